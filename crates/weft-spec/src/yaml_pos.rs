//! Line and column of YAML values, for diagnostics: the document is read a second time (only
//! when there is something to report) into a tree whose every node carries its position.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::collections::{HashMap, HashSet};
use std::fmt;

enum Node {
    Scalar,
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(String, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<KeyText, Spanned<Node>>()? {
            entries.push((k.0, v));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text (YAML keys may be numbers or booleans; JSON pointers see text).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(KeyText(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }
}

/// The 1-based position of the value at each wanted pointer.
pub fn locate_yaml(text: &str, pointers: &[&str]) -> HashMap<String, (usize, usize)> {
    let wanted: HashSet<&str> = pointers.iter().copied().collect();
    let mut found = HashMap::new();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = crate::source::MAX_DEPTH;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // The text already parsed once; if this second read fails, positions are simply absent.
    let Ok(root) = serde_saphyr::from_str_with_options::<Spanned<Node>>(text, options) else {
        return found;
    };
    let mut stack: Vec<(String, &Spanned<Node>)> = vec![(String::new(), &root)];
    while let Some((ptr, node)) = stack.pop() {
        if wanted.contains(ptr.as_str()) {
            let loc = node.referenced;
            found.insert(ptr.clone(), (loc.line() as usize, loc.column() as usize));
        }
        match &node.value {
            Node::Scalar => {}
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((format!("{ptr}/{i}"), item));
                }
            }
            Node::Map(entries) => {
                for (k, v) in entries {
                    stack.push((crate::diagnostic::join(&ptr, k), v));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_in_block_style_documents() {
        let text = "a:\n  b:\n  - x: 1\n    y: [2, 3]\nc: {}\n";
        let found = locate_yaml(text, &["", "/a", "/a/b", "/a/b/0/x", "/c"]);
        assert_eq!(found[""], (1, 1));
        assert_eq!(found["/a/b"], (3, 5));
        assert_eq!(found["/a/b/0/x"], (3, 8));
        assert_eq!(found["/c"], (5, 4));
    }
}
