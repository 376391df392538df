//! Password hashes as RabbitMQ keeps them: a 4-byte random salt and the digest of salt then
//! password, by one of RabbitMQ's three hashing modules (`rabbit_password_hashing_sha256`, its
//! default; `rabbit_password_hashing_sha512`; `rabbit_password_hashing_md5`, used before 3.6 and
//! assumed by RabbitMQ for an imported user without `hashing_algorithm`). New passwords are
//! hashed with SHA-256; the others exist so users exported from a RabbitMQ node log in.

use bytes::Bytes;
use sha2::{Digest, Sha256, Sha512};

const SALT_LEN: usize = 4;

/// A hashing algorithm of RabbitMQ's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// `rabbit_password_hashing_sha256`.
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
    /// `rabbit_password_hashing_md5`.
    Md5,
}

impl HashAlgorithm {
    /// RabbitMQ's module name, as definitions and the API carry it.
    pub fn rabbitmq_name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    /// The algorithm RabbitMQ names so; `None` for one it does not have.
    pub fn from_rabbitmq_name(name: &str) -> Option<Self> {
        [Self::Sha256, Self::Sha512, Self::Md5]
            .into_iter()
            .find(|a| a.rabbitmq_name() == name)
    }

    fn tag(self) -> &'static [u8] {
        match self {
            HashAlgorithm::Sha256 => b"sha256:",
            HashAlgorithm::Sha512 => b"sha512:",
            HashAlgorithm::Md5 => b"md5:",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
            HashAlgorithm::Md5 => 16,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            HashAlgorithm::Sha512 => Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            HashAlgorithm::Md5 => {
                let mut input = Vec::with_capacity(salt.len() + password.len());
                input.extend_from_slice(salt);
                input.extend_from_slice(password);
                crate::md5::digest(&input).to_vec()
            }
        }
    }
}

/// A salted password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: HashAlgorithm,
    salt: [u8; SALT_LEN],
    digest: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the digest: logs and panics must not carry a crackable hash.
        write!(f, "PasswordHash({:?}, ..)", self.algorithm)
    }
}

impl PasswordHash {
    /// Hashes `password` with SHA-256 (RabbitMQ's default) and a fresh random salt.
    pub fn new(password: &str) -> Self {
        Self::with_salt(HashAlgorithm::Sha256, rand::random(), password)
    }

    pub(crate) fn with_salt(
        algorithm: HashAlgorithm,
        salt: [u8; SALT_LEN],
        password: &str,
    ) -> Self {
        PasswordHash {
            algorithm,
            salt,
            digest: algorithm.digest(&salt, password.as_bytes()),
        }
    }

    /// The algorithm this hash was made with.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// Whether `password` is the one hashed.
    pub fn verify(&self, password: &str) -> bool {
        // Not constant time: the salt makes the digest unpredictable to a guesser, and RabbitMQ
        // compares the same way.
        self.algorithm.digest(&self.salt, password.as_bytes()) == self.digest
    }

    /// A hash in RabbitMQ's form (salt then digest: the base64 of this is what definitions and
    /// the API carry) made by `algorithm`; `None` when the length does not fit it.
    pub fn from_rabbitmq(algorithm: HashAlgorithm, salt_and_digest: &[u8]) -> Option<Self> {
        let (salt, digest) = salt_and_digest.split_first_chunk::<SALT_LEN>()?;
        (digest.len() == algorithm.digest_len()).then(|| PasswordHash {
            algorithm,
            salt: *salt,
            digest: digest.to_vec(),
        })
    }

    /// This hash in RabbitMQ's form: salt then digest.
    pub fn to_rabbitmq(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(SALT_LEN + self.digest.len());
        v.extend_from_slice(&self.salt);
        v.extend_from_slice(&self.digest);
        v
    }

    /// The store encoding: the algorithm's tag, then salt and digest.
    pub(crate) fn encode(&self) -> Bytes {
        let tag = self.algorithm.tag();
        let mut v = Vec::with_capacity(tag.len() + SALT_LEN + self.digest.len());
        v.extend_from_slice(tag);
        v.extend_from_slice(&self.to_rabbitmq());
        Bytes::from(v)
    }

    /// Reads [`PasswordHash::encode`]'s bytes; `None` when damaged.
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha512,
            HashAlgorithm::Md5,
        ]
        .into_iter()
        .find_map(|a| Self::from_rabbitmq(a, b.strip_prefix(a.tag())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_password_verifies_and_another_does_not() {
        for alg in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha512,
            HashAlgorithm::Md5,
        ] {
            let h = PasswordHash::with_salt(alg, [1, 2, 3, 4], "s3cret");
            assert!(h.verify("s3cret"), "{alg:?}");
            assert!(!h.verify("s3cret "), "{alg:?}");
            assert!(!h.verify(""), "{alg:?}");
            assert_eq!(PasswordHash::decode(&h.encode()), Some(h.clone()));
            assert_eq!(
                PasswordHash::from_rabbitmq(alg, &h.to_rabbitmq()),
                Some(h.clone())
            );
        }
        let h = PasswordHash::new("s3cret");
        assert_eq!(h.algorithm(), HashAlgorithm::Sha256);
        assert!(h.verify("s3cret"));
    }

    #[test]
    fn a_sha256_hash_exported_by_rabbitmq_verifies() {
        // `rabbitmqctl add_user bob s3cret` on RabbitMQ 3.10.8, then `export_definitions`:
        // password_hash "DsW/ERHjhwAiSoGLBCw87ZZlxbvevucjY4Q0ix4CuDaUpqrL" (base64 of salt ++ digest).
        let salt = [0x0e, 0xc5, 0xbf, 0x11];
        let h = PasswordHash::with_salt(HashAlgorithm::Sha256, salt, "s3cret");
        assert_eq!(
            hex(&h.digest),
            "11e38700224a818b042c3ced9665c5bbdebee7236384348b1e02b83694a6aacb"
        );
    }

    #[test]
    fn sha512_and_md5_digest_salt_then_password() {
        // Reference digests of "\x01\x02\x03\x04pw" computed independently
        // (`printf '\x01\x02\x03\x04pw' | sha512sum` / `md5sum`).
        let salt = [1, 2, 3, 4];
        let h = PasswordHash::with_salt(HashAlgorithm::Md5, salt, "pw");
        assert_eq!(hex(&h.digest), MD5_1234PW);
        let h = PasswordHash::with_salt(HashAlgorithm::Sha512, salt, "pw");
        assert_eq!(hex(&h.digest), SHA512_1234PW);
    }

    const MD5_1234PW: &str = "947dd60b754805939af0fe57303b3055";
    const SHA512_1234PW: &str = "510a820f754148d73a812e2228eb6230c9aa68751b7810244a44652d8588310e4b6dc91a83767a1b79711eaa002e0a004ee4aa987cc0603ff6b78e9facbe6dcc";

    #[test]
    fn wrong_lengths_and_tags_are_refused() {
        let h = PasswordHash::with_salt(HashAlgorithm::Sha512, [0; 4], "x").to_rabbitmq();
        assert!(PasswordHash::from_rabbitmq(HashAlgorithm::Sha256, &h).is_none());
        assert!(PasswordHash::from_rabbitmq(HashAlgorithm::Sha512, &h[..67]).is_none());
        assert!(PasswordHash::from_rabbitmq(HashAlgorithm::Md5, &h[..3]).is_none());
        assert!(PasswordHash::decode(b"sha1:abcd").is_none());
        assert_eq!(
            HashAlgorithm::from_rabbitmq_name("rabbit_password_hashing_sha512"),
            Some(HashAlgorithm::Sha512)
        );
        assert_eq!(HashAlgorithm::from_rabbitmq_name("sha512"), None);
    }

    #[test]
    fn debug_output_hides_the_digest() {
        let h = PasswordHash::with_salt(HashAlgorithm::Sha256, [9; 4], "pw");
        let shown = format!("{h:?}");
        assert!(!shown.contains(&hex(&h.digest)[..8]), "{shown}");
    }
}
