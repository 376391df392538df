//! Generated sequences of `warren ctl` user, vhost and permission commands against a running
//! Warren, checked after every step against a model (sets of users, vhosts and grants): each
//! command's exit status and message, then `list_users`, `list_vhosts` and `list_permissions`.
//! Seedable: `WARREN_CTL_SEED=n` replays one sequence, `WARREN_CTL_RUNS=n` runs seeds 0..n.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use warren_server::ServerHandle;

/// xorshift64*: enough randomness for choosing operations, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// guest is not in the pool: ctl logs in as guest, so it is never deleted.
const USERS: [&str; 3] = ["ann", "ben", "cat"];
const VHOSTS: [&str; 3] = ["/", "va", "vb"];

/// What the broker should hold: users with their tags, vhosts, and (vhost, user) grants.
struct Model {
    users: BTreeMap<String, Vec<String>>,
    vhosts: BTreeSet<String>,
    grants: BTreeSet<(String, String)>,
}

impl Model {
    fn new() -> Self {
        Model {
            users: BTreeMap::from([("guest".into(), vec!["administrator".into()])]),
            vhosts: BTreeSet::from(["/".into()]),
            grants: BTreeSet::from([("/".into(), "guest".into())]),
        }
    }

    /// Applies one command; `Err(text)` is the stderr it must fail with.
    fn apply(&mut self, args: &[String]) -> Result<(), String> {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        match a.as_slice() {
            ["add_user", u, _] => {
                if self.users.contains_key(*u) {
                    return Err(format!("Error:\nUser \"{u}\" already exists\n"));
                }
                self.users.insert(u.to_string(), Vec::new());
            }
            ["delete_user", u] => {
                if self.users.remove(*u).is_none() {
                    return Err(format!("Error:\nUser \"{u}\" does not exist\n"));
                }
                self.grants.retain(|(_, g)| g != u);
            }
            ["set_user_tags", u, tags @ ..] => {
                let Some(t) = self.users.get_mut(*u) else {
                    return Err(format!("Error:\nUser \"{u}\" does not exist\n"));
                };
                *t = tags.iter().map(|s| s.to_string()).collect();
            }
            ["add_vhost", v] => {
                // Through the API, a new vhost gives its creator (guest) full permissions.
                if self.vhosts.insert(v.to_string()) {
                    self.grants.insert((v.to_string(), "guest".into()));
                }
            }
            ["delete_vhost", v] => {
                if !self.vhosts.remove(*v) {
                    return Err(format!("Virtual host '{v}' does not exist\n"));
                }
                self.grants.retain(|(g, _)| g != v);
            }
            ["set_permissions", "-p", v, u, ..] | ["clear_permissions", "-p", v, u] => {
                if !self.vhosts.contains(*v) {
                    return Err(format!("Virtual host '{v}' does not exist\n"));
                }
                if !self.users.contains_key(*u) {
                    return Err(format!("Error:\nUser {u} does not exist\n"));
                }
                let grant = (v.to_string(), u.to_string());
                if a[0] == "set_permissions" {
                    self.grants.insert(grant);
                } else {
                    self.grants.remove(&grant);
                }
            }
            other => panic!("no model for {other:?}"),
        }
        Ok(())
    }
}

fn generate(rng: &mut Rng) -> Vec<String> {
    let u = USERS[rng.below(USERS.len())];
    let v = VHOSTS[rng.below(VHOSTS.len())];
    let args: Vec<&str> = match rng.below(8) {
        0 | 1 => vec!["add_user", u, "pw"],
        2 => vec!["delete_user", u],
        3 => vec![
            "set_user_tags",
            u,
            ["monitoring", "management"][rng.below(2)],
        ],
        4 => vec!["add_vhost", v],
        5 => vec!["delete_vhost", v],
        6 => vec!["set_permissions", "-p", v, u, ".*", ".*", ".*"],
        _ => vec!["clear_permissions", "-p", v, u],
    };
    args.into_iter().map(String::from).collect()
}

fn ctl(server: &ServerHandle, args: &[String]) -> (i32, String, String) {
    let url = format!("http://{}", server.management_addr().unwrap());
    let out = common::warren_binary()
        .args(["ctl", "--url", &url, "-q"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn listed(server: &ServerHandle, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (code, out, err) = ctl(server, &args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn check_state(server: &ServerHandle, model: &Model, log: &[Vec<String>]) {
    let users: String = model
        .users
        .iter()
        .map(|(u, t)| format!("{u}\t[{}]\n", t.join(", ")))
        .collect();
    assert_eq!(
        listed(server, &["list_users", "-s"]),
        users,
        "after {log:#?}"
    );
    let vhosts: String = model.vhosts.iter().map(|v| format!("{v}\n")).collect();
    assert_eq!(
        listed(server, &["list_vhosts", "-s"]),
        vhosts,
        "after {log:#?}"
    );
    for v in &model.vhosts {
        let want: String = model
            .grants
            .iter()
            .filter(|(g, _)| g == v)
            .map(|(_, u)| format!("{u}\t.*\t.*\t.*\n"))
            .collect();
        assert_eq!(
            listed(server, &["list_permissions", "-s", "-p", v]),
            want,
            "permissions of {v} after {log:#?}"
        );
    }
}

fn run(seed: u64, steps: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(common::start());
    let mut rng = Rng(seed.wrapping_mul(2_654_435_761).wrapping_add(1));
    let mut model = Model::new();
    let mut log = Vec::new();
    for _ in 0..steps {
        let args = generate(&mut rng);
        log.push(args.clone());
        let want = model.apply(&args);
        let (code, _, err) = ctl(&server, &args);
        match want {
            Ok(()) => assert_eq!((code, err.as_str()), (0, ""), "seed {seed}: {log:#?}"),
            Err(text) => assert_eq!((code, err), (1, text), "seed {seed}: {log:#?}"),
        }
        check_state(&server, &model, &log);
    }
    runtime.block_on(server.shutdown()).unwrap();
}

#[test]
fn generated_ctl_sequences_agree_with_the_model() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(seed) = env("WARREN_CTL_SEED") {
        return run(seed, 80);
    }
    for seed in 0..env("WARREN_CTL_RUNS").unwrap_or(4) {
        run(seed, 40);
    }
}
