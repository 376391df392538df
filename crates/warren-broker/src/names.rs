//! Server-generated names, in RabbitMQ's shapes.

use rand::Rng;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn random_suffix(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A queue name for `queue.declare` with an empty name: `amq.gen-` and 22 random characters.
pub fn generate_queue_name() -> String {
    format!("amq.gen-{}", random_suffix(22))
}

/// A consumer tag for `basic.consume` with an empty tag: `amq.ctag-` and 22 random characters.
pub fn generate_consumer_tag() -> String {
    format!("amq.ctag-{}", random_suffix(22))
}

/// The secret part of a direct reply-to address: 24 random characters (144 bits), so an address
/// cannot be guessed from another.
pub fn generate_reply_key() -> String {
    random_suffix(24)
}
