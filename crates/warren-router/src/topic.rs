//! The topic exchange's binding trie: one edge per binding-key word, with `*` and `#` edges kept
//! apart from literal words so a route looks up each routing-key word instead of testing every
//! binding.
//!
//! Words follow RabbitMQ's `split_topic_key`: split on `.`, an empty key has no words, and empty
//! words (`"a."`, `"a..b"`) are words. Matching follows `trie_match`: `*` takes exactly one word,
//! `#` zero or more. The trie does not know what its values mean; the router stores destinations.

use ahash::RandomState;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::HashMap;

/// Splits the first word off a non-empty remainder. `None` means no words are left, which is
/// different from `Some(b"")`, one empty word.
fn next_word(rest: &[u8]) -> (&[u8], Option<&[u8]>) {
    match rest.iter().position(|&b| b == b'.') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    }
}

/// The words of a key; the empty key has none.
fn words(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = if key.is_empty() { None } else { Some(key) };
    std::iter::from_fn(move || {
        let (w, tail) = next_word(rest?);
        rest = tail;
        Some(w)
    })
}

/// The trie path a binding key is stored under. `#.#` matches exactly what `#` matches, so
/// consecutive `#` words collapse: this keeps a hostile `#.#.#.#` binding from making every
/// route try every way of splitting the key between the hashes.
fn path(key: &[u8]) -> SmallVec<[&[u8]; 8]> {
    let mut out: SmallVec<[&[u8]; 8]> = SmallVec::new();
    for w in words(key) {
        if w == b"#" && out.last().is_some_and(|l| *l == b"#") {
            continue;
        }
        out.push(w);
    }
    out
}

#[derive(Debug, Clone)]
struct Node<T> {
    literal: HashMap<Bytes, Node<T>, RandomState>,
    star: Option<Box<Node<T>>>,
    hash: Option<Box<Node<T>>>,
    values: SmallVec<[T; 1]>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: HashMap::default(),
            star: None,
            hash: None,
            values: SmallVec::new(),
        }
    }
}

impl<T: Copy + PartialEq> Node<T> {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.literal.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
    }

    fn child_mut(&mut self, word: &[u8]) -> &mut Node<T> {
        match word {
            b"*" => self.star.get_or_insert_with(Box::default),
            b"#" => self.hash.get_or_insert_with(Box::default),
            w => self.literal.entry(Bytes::copy_from_slice(w)).or_default(),
        }
    }

    /// Removes one copy of `value` under `path`; returns whether it was there. Prunes nodes left
    /// empty so that the trie's size follows its bindings.
    fn remove(&mut self, path: &[&[u8]], value: T) -> bool {
        let Some((first, rest)) = path.split_first() else {
            let Some(i) = self.values.iter().position(|v| *v == value) else {
                return false;
            };
            self.values.swap_remove(i);
            return true;
        };
        match *first {
            b"*" | b"#" => {
                let slot = if *first == b"*" {
                    &mut self.star
                } else {
                    &mut self.hash
                };
                let Some(child) = slot.as_mut() else {
                    return false;
                };
                let found = child.remove(rest, value);
                if child.is_empty() {
                    *slot = None;
                }
                found
            }
            w => {
                let Some(child) = self.literal.get_mut(w) else {
                    return false;
                };
                let found = child.remove(rest, value);
                if child.is_empty() {
                    self.literal.remove(w);
                }
                found
            }
        }
    }

    fn walk<'a>(&'a self, rest: Option<&[u8]>, emit: &mut impl FnMut(&'a [T])) {
        let Some(s) = rest else {
            emit(&self.values);
            if let Some(h) = &self.hash {
                h.walk(None, emit);
            }
            return;
        };
        let (word, tail) = next_word(s);
        if let Some(child) = self.literal.get(word) {
            child.walk(tail, emit);
        }
        if let Some(child) = &self.star {
            child.walk(tail, emit);
        }
        if let Some(h) = &self.hash {
            // `#` swallows zero, one, ... all of the remaining words.
            let mut r = Some(s);
            loop {
                h.walk(r, emit);
                match r {
                    None => break,
                    Some(x) => r = next_word(x).1,
                }
            }
        }
    }
}

/// Topic bindings of one exchange, each stored as a value under its binding key.
#[derive(Debug, Clone)]
pub struct TopicTrie<T> {
    root: Node<T>,
    len: usize,
}

impl<T> Default for TopicTrie<T> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T: Copy + PartialEq> TopicTrie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` under `binding_key`. Duplicates are kept: the caller decides identity.
    pub fn insert(&mut self, binding_key: &[u8], value: T) {
        let mut node = &mut self.root;
        for w in path(binding_key) {
            node = node.child_mut(w);
        }
        node.values.push(value);
        self.len += 1;
    }

    /// Removes one copy of `value` stored under `binding_key`; returns whether there was one.
    pub fn remove(&mut self, binding_key: &[u8], value: T) -> bool {
        let found = self.root.remove(&path(binding_key), value);
        if found {
            self.len -= 1;
        }
        found
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `emit` with every value whose binding key matches `routing_key`, possibly more than
    /// once when several patterns or paths match. Does not allocate.
    pub fn for_each_match<'a>(&'a self, routing_key: &[u8], mut emit: impl FnMut(T)) {
        let start = if routing_key.is_empty() {
            None
        } else {
            Some(routing_key)
        };
        self.root.walk(start, &mut |vals: &'a [T]| {
            for v in vals {
                emit(*v);
            }
        });
    }
}

/// A direct, obviously correct matcher for tests: RabbitMQ's rules over word lists.
#[cfg(test)]
pub(crate) fn naive_match(pattern: &[u8], key: &[u8]) -> bool {
    fn go(p: &[&[u8]], k: &[&[u8]]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&b"#", prest)) => (0..=k.len()).any(|i| go(prest, &k[i..])),
            Some((&b"*", prest)) => !k.is_empty() && go(prest, &k[1..]),
            Some((w, prest)) => k.first().is_some_and(|kw| kw == w) && go(prest, &k[1..]),
        }
    }
    let p: Vec<&[u8]> = words(pattern).collect();
    let k: Vec<&[u8]> = words(key).collect();
    go(&p, &k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, key: &str) -> bool {
        let mut t = TopicTrie::new();
        t.insert(pattern.as_bytes(), 1u32);
        let mut hit = false;
        t.for_each_match(key.as_bytes(), |_| hit = true);
        assert_eq!(hit, naive_match(pattern.as_bytes(), key.as_bytes()));
        hit
    }

    #[test]
    fn empty_routing_key_has_zero_words() {
        assert_eq!(words(b"").count(), 0);
        assert_eq!(words(b"a.").collect::<Vec<_>>(), [&b"a"[..], b""]);
        assert_eq!(words(b".").count(), 2);
        assert_eq!(words(b"a..b").count(), 3);
    }

    #[test]
    fn hash_matches_empty_routing_key() {
        assert!(matches("#", ""));
        assert!(matches("#.#", ""));
    }

    #[test]
    fn star_does_not_match_empty_routing_key() {
        assert!(!matches("*", ""));
        assert!(matches("*", "a"));
        assert!(!matches("*", "a.b"));
    }

    #[test]
    fn star_matches_an_empty_word() {
        assert!(matches("a.*", "a."));
        assert!(matches("*.b", ".b"));
        assert!(matches("a.*.b", "a..b"));
        assert!(!matches("a", "a."));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert!(matches("a.#", "a"));
        assert!(matches("a.#", "a.b.c"));
        assert!(matches("#.c", "c"));
        assert!(matches("a.#.c", "a.c"));
        assert!(matches("a.#.c", "a.b.b.c"));
        assert!(!matches("a.#.c", "a.b.b"));
        assert!(matches("#.a.#", "x.a"));
    }

    #[test]
    fn empty_binding_key_matches_only_empty_routing_key() {
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(!matches("", "."));
    }

    #[test]
    fn routing_key_words_that_look_like_wildcards_are_literal() {
        assert!(!matches("a", "*"));
        assert!(matches("*", "*"));
        assert!(!matches("a.b", "a.#"));
    }

    #[test]
    fn removal_prunes_and_keeps_other_values() {
        let mut t = TopicTrie::new();
        t.insert(b"a.*.#", 1u32);
        t.insert(b"a.*.#", 2u32);
        t.insert(b"a.b", 3u32);
        assert_eq!(t.len(), 3);
        assert!(t.remove(b"a.*.#", 1));
        assert!(!t.remove(b"a.*.#", 1));
        assert!(!t.remove(b"nope", 3));
        let mut got = vec![];
        t.for_each_match(b"a.b", |v| got.push(v));
        got.sort_unstable();
        assert_eq!(got, [2, 3]);
        assert!(t.remove(b"a.*.#", 2));
        assert!(t.remove(b"a.b", 3));
        assert!(t.is_empty());
        assert!(t.root.is_empty());
    }

    #[test]
    fn collapsed_hashes_are_removed_under_either_spelling() {
        let mut t = TopicTrie::new();
        t.insert(b"#.#", 7u32);
        assert!(t.remove(b"#.#", 7));
        assert!(t.root.is_empty());
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("*".to_owned()),
            Just("#".to_owned()),
        ]
    }

    fn key(max: usize) -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(String::new()),
            6 => prop::collection::vec(word(), 1..max).prop_map(|w| w.join(".")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn trie_agrees_with_naive_matcher(
            patterns in prop::collection::vec(key(6), 1..12),
            keys in prop::collection::vec(key(7), 1..8),
        ) {
            let mut t = TopicTrie::new();
            for (i, p) in patterns.iter().enumerate() {
                t.insert(p.as_bytes(), i);
            }
            for k in &keys {
                let mut got = vec![];
                t.for_each_match(k.as_bytes(), |v| got.push(v));
                got.sort_unstable();
                got.dedup();
                let want: Vec<usize> = patterns
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| naive_match(p.as_bytes(), k.as_bytes()))
                    .map(|(i, _)| i)
                    .collect();
                prop_assert_eq!(got, want, "key {:?} patterns {:?}", k, patterns);
            }
            for (i, p) in patterns.iter().enumerate() {
                prop_assert!(t.remove(p.as_bytes(), i));
            }
            prop_assert!(t.root.is_empty());
        }
    }
}
