//! Admission: how many sockets the listener takes. Two limits, both counted with semaphores
//! whose permits live as long as what they count:
//!
//! - `connection_max` (RabbitMQ's): every accepted socket holds a connection permit until its task
//!   ends. At the limit the listener stops calling `accept` (RabbitMQ's Ranch listener does the
//!   same), so a client beyond it waits in the kernel's backlog until a connection closes.
//! - `handshake_max` (Warren's own): a socket that has not finished the handshake holds a
//!   handshake permit; one accepted while all are taken is closed at once. With
//!   `handshake_timeout` this bounds the descriptors and memory half-open handshakes (a flood,
//!   slowloris writers) can hold, without limiting established connections.
//!
//! Not here: the vhost's and user's connection limits (checked at `connection.open`, in
//! `warren-broker`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// The listener's two counters.
#[derive(Debug)]
pub struct Admission {
    /// `None`: no `connection_max`.
    connections: Option<Arc<Semaphore>>,
    /// `None`: no `handshake_max`.
    handshakes: Option<Arc<Semaphore>>,
}

/// What an admitted socket holds: released when its connection task ends.
#[derive(Debug)]
pub struct Admitted {
    _connection: Option<OwnedSemaphorePermit>,
    /// Released when the handshake ends, successfully or not.
    pub handshake: HandshakeSlot,
}

/// A place among the sockets in the handshake; dropping it frees the place.
#[derive(Debug)]
pub struct HandshakeSlot(Option<OwnedSemaphorePermit>);

/// A semaphore of `max` permits, or none for 0 (no limit). Tokio caps permits at
/// `usize::MAX >> 3`; a larger configured value is the same as no limit.
fn semaphore(max: u64) -> Option<Arc<Semaphore>> {
    match usize::try_from(max) {
        Ok(0) => None,
        Ok(n) if n <= Semaphore::MAX_PERMITS => Some(Arc::new(Semaphore::new(n))),
        _ => None,
    }
}

impl Admission {
    /// The limits of `config`.
    pub fn new(config: &Config) -> Admission {
        Admission {
            connections: semaphore(config.connection_max),
            handshakes: semaphore(config.handshake_max),
        }
    }

    /// Waits for room under `connection_max`, then accepts the next socket. Cancel-safe: a
    /// permit taken before the accept is cancelled goes back.
    ///
    /// Returns `Ok(None)` for a socket refused because `handshake_max` sockets are already in
    /// the handshake; it has been dropped (closed) already.
    pub async fn accept(
        &self,
        listener: &TcpListener,
    ) -> std::io::Result<Option<(TcpStream, SocketAddr, Admitted)>> {
        let connection = match &self.connections {
            // The semaphore is never closed, so acquiring fails only in theory.
            Some(s) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        let (stream, peer) = listener.accept().await?;
        let handshake = match &self.handshakes {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::warn!(%peer, "too many connections in the handshake: closed");
                    drop(stream);
                    return Ok(None);
                }
            },
            None => None,
        };
        Ok(Some((
            stream,
            peer,
            Admitted {
                _connection: connection,
                handshake: HandshakeSlot(handshake),
            },
        )))
    }
}

impl HandshakeSlot {
    /// Frees the place (the handshake is over).
    pub fn release(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_huge_limits_mean_no_limit() {
        assert!(semaphore(0).is_none());
        assert!(semaphore(u64::MAX).is_none());
        assert_eq!(semaphore(3).map(|s| s.available_permits()), Some(3));
    }
}
