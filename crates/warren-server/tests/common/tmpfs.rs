//! Filling a disk: a small tmpfs (root only; tests skip elsewhere) and a publisher that fills
//! it until the broker blocks or refuses it.

use std::time::Duration;

/// A small tmpfs mounted for one test and unmounted when dropped; `None` where this process
/// may not mount (not root, or in a container that forbids it): the tests using it then say so
/// and check nothing.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB on a fresh directory.
    pub fn mount(mib: u64) -> Option<Tmpfs> {
        let dir = super::fresh_data_dir().with_extension("tmpfs");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    /// Changes its size.
    pub fn resize(&self, mib: u64) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount");
    }
}

impl Tmpfs {
    /// Where it is mounted.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a failed test drops this before its server has closed the store's files, and
        // a busy filesystem must not stay mounted.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A publish's confirm: true for an ack.
pub type Confirm = tokio::task::JoinHandle<bool>;

/// What a fill saw: numbers acked, nacked, and still waiting for their confirm.
#[derive(Default)]
pub struct Fill {
    pub acked: Vec<u64>,
    pub nacked: Vec<u64>,
    pub due: Vec<(u64, Confirm)>,
}

/// Publishes numbered 1 KiB messages (the number in the first 8 bytes, big-endian) with
/// `delivery_mode` to `queue` in windows of 64,
/// waiting for each window's confirms, until `max` messages, a window with a nack, or a
/// confirm that does not come within `patience` (the publisher is blocked). Each publish is a
/// task: lapin holds a blocked connection's publishes back, so a publish itself may wait.
pub async fn fill(
    ch: &lapin::Channel,
    queue: &str,
    delivery_mode: u8,
    max: u64,
    patience: Duration,
) -> Fill {
    fill_from(ch, queue, delivery_mode, 0, max, patience).await
}

/// [`fill`] numbering its messages from `start`.
pub async fn fill_from(
    ch: &lapin::Channel,
    queue: &str,
    delivery_mode: u8,
    start: u64,
    max: u64,
    patience: Duration,
) -> Fill {
    let mut out = Fill::default();
    let props = lapin::BasicProperties::default().with_delivery_mode(delivery_mode);
    let mut n = start;
    while n < start + max && out.nacked.is_empty() {
        let mut window = Vec::new();
        for _ in 0..64 {
            let mut body = vec![b'.'; 1024];
            body[..8].copy_from_slice(&n.to_be_bytes());
            let (ch, props, queue) = (ch.clone(), props.clone(), queue.to_string());
            let task = tokio::spawn(async move {
                let confirm = ch
                    .basic_publish("", &queue, Default::default(), &body, props)
                    .await
                    .unwrap();
                confirm.await.unwrap().is_ack()
            });
            window.push((n, task));
            n += 1;
        }
        let mut window = window.into_iter();
        while let Some((number, mut confirm)) = window.next() {
            match tokio::time::timeout(patience, &mut confirm).await {
                Ok(Ok(true)) => out.acked.push(number),
                Ok(Ok(false)) => out.nacked.push(number),
                Ok(Err(e)) => panic!("publish {number} failed: {e}"),
                Err(_) => {
                    out.due.push((number, confirm));
                    out.due.extend(window);
                    return out;
                }
            }
        }
    }
    out.acked.sort_unstable();
    out
}

/// Waits for every confirm a blocked fill still waits for; returns every acked number.
pub async fn settle(filled: Fill, patience: Duration) -> Vec<u64> {
    let mut acked = filled.acked;
    for (n, confirm) in filled.due {
        let ack = tokio::time::timeout(patience, confirm)
            .await
            .expect("confirmed once space returned")
            .unwrap();
        assert!(ack, "{n} acked");
        acked.push(n);
    }
    acked.sort_unstable();
    acked
}
