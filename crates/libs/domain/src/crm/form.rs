//! `application/x-www-form-urlencoded` bodies with PHP bracket paths
//! (`leads[update][0][custom_fields][1][values][0][enum]=42`), the keys
//! percent-encoded or not, read into an ordered tree. JSON bodies (Bitrix24
//! documents its events as JSON) read into the same tree, so one reader
//! serves both.

use crate::limits::{FORM_MAX_DEPTH, FORM_MAX_PAIRS, LimitExceeded};
use serde_json::Value;
use std::collections::HashMap;

/// A value, or named children in the order they first appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Leaf(String),
    Branch(Vec<(String, Node)>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the body is empty")]
    Empty,
    #[error("malformed key '{0}': expected name[part][part]…")]
    MalformedKey(String),
    #[error("the body is neither a form nor a JSON object: {0}")]
    NotJson(String),
    /// PostgreSQL stores no NUL in text: refused here, not half-way.
    #[error("the body contains a NUL character")]
    Nul,
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
}

impl Node {
    /// The child named `name`, if this is a branch that has one.
    pub fn get(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Branch(children) => children.iter().find(|(k, _)| k == name).map(|(_, n)| n),
            Node::Leaf(_) => None,
        }
    }

    /// The node at `path`.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, part| node.get(part))
    }

    /// This node's text, if it is a leaf.
    pub fn text(&self) -> Option<&str> {
        match self {
            Node::Leaf(s) => Some(s),
            Node::Branch(_) => None,
        }
    }

    /// The text at `path`, if there is a leaf there.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        self.at(path).and_then(Node::text).map(str::to_owned)
    }

    pub fn children(&self) -> &[(String, Node)] {
        match self {
            Node::Branch(children) => children,
            Node::Leaf(_) => &[],
        }
    }

    /// Children ordered by their numeric key (`0`, `1`, `10`); keys that are
    /// not numbers follow, in the order they appeared.
    pub fn indexed(&self) -> Vec<(&str, &Node)> {
        let mut items: Vec<(&str, &Node)> = self
            .children()
            .iter()
            .map(|(k, n)| (k.as_str(), n))
            .collect();
        items.sort_by_key(|(k, _)| k.parse::<u64>().map_or((1, 0), |n| (0, n)));
        items
    }
}

/// Reads a body: a JSON object when it starts with `{`, a form otherwise.
/// Time and memory are linear in the body; a key deeper than
/// [`FORM_MAX_DEPTH`] parts or a body of more than [`FORM_MAX_PAIRS`] values
/// is refused at the first one found.
pub fn parse(body: &str) -> Result<Node, FormError> {
    let body = body.trim_start_matches('\u{feff}').trim();
    if body.is_empty() {
        return Err(FormError::Empty);
    }
    if body.starts_with('{') {
        // serde_json refuses nesting past 128 itself, so its parse cannot
        // overflow the stack; the tree is then held to our own limits.
        let value: Value =
            serde_json::from_str(body).map_err(|e| FormError::NotJson(e.to_string()))?;
        check_json(&value)?;
        return Ok(from_json(&value));
    }
    let mut tree = Tree::new();
    let mut pairs = 0;
    for (key, value) in form_urlencoded::parse(body.as_bytes()) {
        if key.contains('\0') || value.contains('\0') {
            return Err(FormError::Nul);
        }
        if key.is_empty() {
            continue;
        }
        pairs += 1;
        if pairs > FORM_MAX_PAIRS {
            return Err(LimitExceeded::new("name=value pairs", FORM_MAX_PAIRS).into());
        }
        tree.insert(&split_key(&key)?, value.into_owned());
    }
    Ok(tree.into_node())
}

/// `a[b][0]` → `["a", "b", "0"]`; `a[]` appends (an empty part).
fn split_key(key: &str) -> Result<Vec<&str>, FormError> {
    let malformed = || FormError::MalformedKey(key.chars().take(100).collect());
    let (base, mut rest) = match key.find('[') {
        Some(i) => key.split_at(i),
        None => (key, ""),
    };
    if base.is_empty() {
        return Err(malformed());
    }
    let mut parts = vec![base];
    while !rest.is_empty() {
        if parts.len() == FORM_MAX_DEPTH {
            return Err(LimitExceeded::new("levels of brackets in a key", FORM_MAX_DEPTH).into());
        }
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let end = inner.find(']').ok_or_else(malformed)?;
        parts.push(&inner[..end]);
        rest = &inner[end + 1..];
    }
    Ok(parts)
}

/// The tree while a form is read: nodes in one arena, each branch's children
/// found through one map, so a body of many sibling keys costs a lookup per
/// key, not a scan of its siblings.
struct Tree {
    slots: Vec<Slot>,
    /// (branch, child name) → (child slot, position among the branch's children).
    index: HashMap<(usize, String), (usize, usize)>,
}

enum Slot {
    Leaf(String),
    Branch(Vec<(String, usize)>),
}

const ROOT: usize = 0;

impl Tree {
    fn new() -> Tree {
        Tree {
            slots: vec![Slot::Branch(Vec::new())],
            index: HashMap::new(),
        }
    }

    /// Sets the value at `path` (never empty). A leaf on the way becomes a
    /// branch and a branch at the end becomes a leaf, each in a new slot, so
    /// the index never reaches a child its parent no longer lists. The last
    /// value of a repeated key wins, as in PHP.
    fn insert(&mut self, path: &[&str], value: String) {
        let mut parent = ROOT;
        for (i, part) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let Slot::Branch(children) = &self.slots[parent] else {
                return; // unreachable: every parent is made a branch below
            };
            let name = if part.is_empty() {
                children.len().to_string()
            } else {
                (*part).to_owned()
            };
            let existing = self.index.get(&(parent, name.clone())).copied();
            let wanted_leaf = last;
            let child = match existing {
                Some((slot, _)) if matches!(self.slots[slot], Slot::Leaf(_)) == wanted_leaf => slot,
                Some((_, position)) => {
                    let slot = self.push(wanted_leaf);
                    if let Slot::Branch(children) = &mut self.slots[parent] {
                        children[position].1 = slot;
                    }
                    self.index.insert((parent, name), (slot, position));
                    slot
                }
                None => {
                    let slot = self.push(wanted_leaf);
                    let position = match &mut self.slots[parent] {
                        Slot::Branch(children) => {
                            children.push((name.clone(), slot));
                            children.len() - 1
                        }
                        Slot::Leaf(_) => 0,
                    };
                    self.index.insert((parent, name), (slot, position));
                    slot
                }
            };
            parent = child;
        }
        self.slots[parent] = Slot::Leaf(value);
    }

    fn push(&mut self, leaf: bool) -> usize {
        self.slots.push(if leaf {
            Slot::Leaf(String::new())
        } else {
            Slot::Branch(Vec::new())
        });
        self.slots.len() - 1
    }

    /// The finished tree (recursion as deep as the deepest key: at most
    /// `FORM_MAX_DEPTH`).
    fn into_node(mut self) -> Node {
        self.take(ROOT)
    }

    fn take(&mut self, slot: usize) -> Node {
        match std::mem::replace(&mut self.slots[slot], Slot::Branch(Vec::new())) {
            Slot::Leaf(text) => Node::Leaf(text),
            Slot::Branch(children) => Node::Branch(
                children
                    .into_iter()
                    .map(|(name, child)| (name, self.take(child)))
                    .collect(),
            ),
        }
    }
}

/// A JSON body within the form's limits and without NUL, checked without
/// recursion.
fn check_json(value: &Value) -> Result<(), FormError> {
    let mut stack = vec![(value, 1_usize)];
    let mut values = 0;
    while let Some((v, depth)) = stack.pop() {
        if depth > FORM_MAX_DEPTH {
            return Err(LimitExceeded::new("levels of nesting", FORM_MAX_DEPTH).into());
        }
        match v {
            Value::String(s) if s.contains('\0') => return Err(FormError::Nul),
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => {
                for (k, child) in map {
                    if k.contains('\0') {
                        return Err(FormError::Nul);
                    }
                    stack.push((child, depth + 1));
                }
            }
            _ => {}
        }
        values += 1;
        if values > FORM_MAX_PAIRS {
            return Err(LimitExceeded::new("values", FORM_MAX_PAIRS).into());
        }
    }
    Ok(())
}

/// The tree of a JSON value that passed `check_json` (so the recursion is
/// at most `FORM_MAX_DEPTH` deep).
fn from_json(value: &Value) -> Node {
    match value {
        Value::Object(map) => {
            Node::Branch(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
        Value::Array(items) => Node::Branch(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), from_json(v)))
                .collect(),
        ),
        Value::String(s) => Node::Leaf(s.clone()),
        Value::Null => Node::Leaf(String::new()),
        other => Node::Leaf(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_and_plain_brackets_build_the_same_ordered_tree() {
        let plain = parse("a[x][0]=1&a[x][1]=2&b=3&a[y]=4").ok();
        let encoded = parse("a%5Bx%5D%5B0%5D=1&a%5Bx%5D%5B1%5D=2&b=3&a%5By%5D=4").ok();
        assert_eq!(plain, encoded);
        let root = plain.unwrap_or(Node::Leaf(String::new()));
        assert_eq!(root.text_at(&["a", "x", "1"]).as_deref(), Some("2"));
        let order: Vec<&str> = root.children().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order, ["a", "b"]);
    }

    #[test]
    fn plus_is_a_space_indices_sort_numerically_and_empty_brackets_append() {
        let root = parse("n=Hello+World&l[10]=c&l[2]=b&l[0]=a&m[]=x&m[]=y").ok();
        let root = root.unwrap_or(Node::Leaf(String::new()));
        assert_eq!(root.text_at(&["n"]).as_deref(), Some("Hello World"));
        let l: Vec<&str> = root
            .at(&["l"])
            .map(|l| l.indexed().iter().filter_map(|(_, n)| n.text()).collect())
            .unwrap_or_default();
        assert_eq!(l, ["a", "b", "c"]);
        assert_eq!(root.text_at(&["m", "1"]).as_deref(), Some("y"));
    }

    #[test]
    fn a_nul_anywhere_is_refused() {
        assert_eq!(parse("leads[status][0][id]=1%00"), Err(FormError::Nul));
        assert_eq!(parse("leads%00[status][0][id]=1"), Err(FormError::Nul));
        assert_eq!(parse(r#"{"event": "X\u0000"}"#), Err(FormError::Nul));
    }

    #[test]
    fn malformed_keys_and_empty_bodies_are_errors() {
        assert_eq!(parse("  "), Err(FormError::Empty));
        assert!(matches!(parse("a[b=1"), Err(FormError::MalformedKey(_))));
        assert!(matches!(parse("a[b]c=1"), Err(FormError::MalformedKey(_))));
        assert!(matches!(parse("[x]=1"), Err(FormError::MalformedKey(_))));
        assert!(matches!(parse("{nope"), Err(FormError::NotJson(_))));
    }

    #[test]
    fn json_objects_read_into_the_same_tree() {
        let root = parse(r#"{"data": {"FIELDS": {"ID": "759"}}, "list": [1, null]}"#).ok();
        let root = root.unwrap_or(Node::Leaf(String::new()));
        assert_eq!(
            root.text_at(&["data", "FIELDS", "ID"]).as_deref(),
            Some("759")
        );
        assert_eq!(root.text_at(&["list", "0"]).as_deref(), Some("1"));
    }

    #[test]
    fn a_value_replaces_a_branch_and_a_branch_a_value_in_place() {
        let root = parse("a[b]=1&z=0&a=2&a[c]=3&a[c]=4").ok();
        let root = root.unwrap_or(Node::Leaf(String::new()));
        let order: Vec<&str> = root.children().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order, ["a", "z"]);
        assert_eq!(root.at(&["a"]).map(Node::children).map(<[_]>::len), Some(1));
        assert_eq!(root.text_at(&["a", "c"]).as_deref(), Some("4"));
        assert_eq!(root.text_at(&["a", "b"]), None);
    }

    #[test]
    fn keys_nest_to_the_limit_and_no_further() {
        let at_limit = format!("a{}=1", "[x]".repeat(FORM_MAX_DEPTH - 1));
        let path = vec!["x"; FORM_MAX_DEPTH - 1];
        let mut full = vec!["a"];
        full.extend(path);
        assert_eq!(
            parse(&at_limit)
                .ok()
                .and_then(|r| r.text_at(&full))
                .as_deref(),
            Some("1")
        );
        let deeper = format!("a{}=1", "[x]".repeat(FORM_MAX_DEPTH));
        assert_eq!(
            parse(&deeper),
            Err(LimitExceeded::new("levels of brackets in a key", FORM_MAX_DEPTH).into())
        );
    }

    /// The body that overflowed the stack of the recursive parser: 400 KB of
    /// empty brackets, refused at the limit.
    #[test]
    fn two_hundred_thousand_brackets_are_refused_not_followed() {
        let body = format!("a{}=1", "[]".repeat(200_000));
        let err = parse(&body).err();
        assert!(
            matches!(err, Some(FormError::Limit(l)) if l.limit == FORM_MAX_DEPTH),
            "{err:?}"
        );
        let encoded = format!("a{}=1", "%5B%5D".repeat(200_000));
        assert!(matches!(parse(&encoded), Err(FormError::Limit(_))));
    }

    #[test]
    fn a_megabyte_of_distinct_keys_is_refused_at_the_pair_limit() {
        let mut body = String::new();
        let mut i = 0;
        while body.len() < 1 << 20 {
            body.push_str(&format!("k{i}=v&"));
            i += 1;
        }
        assert_eq!(
            parse(&body),
            Err(LimitExceeded::new("name=value pairs", FORM_MAX_PAIRS).into())
        );
        // Up to the limit every sibling is kept, in order.
        let body: String = (0..FORM_MAX_PAIRS)
            .map(|i| format!("a[k{i}]={i}&"))
            .collect();
        let root = parse(&body).ok().unwrap_or(Node::Leaf(String::new()));
        let a = root.at(&["a"]).map(Node::children).unwrap_or_default();
        assert_eq!(a.len(), FORM_MAX_PAIRS);
        assert_eq!(a.last().map(|(k, _)| k.as_str()), Some("k9999"));
    }

    #[test]
    fn json_bodies_are_held_to_the_same_limits() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
        assert!(matches!(parse(&deep), Err(FormError::Limit(l)) if l.limit == FORM_MAX_DEPTH));
        let wide = format!("{{\"a\":[{}0]}}", "0,".repeat(FORM_MAX_PAIRS));
        assert!(matches!(parse(&wide), Err(FormError::Limit(l)) if l.limit == FORM_MAX_PAIRS));
        let too_deep_for_serde =
            format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse(&too_deep_for_serde),
            Err(FormError::NotJson(_))
        ));
    }

    #[test]
    fn a_malformed_key_is_named_in_at_most_a_hundred_characters() {
        let body = format!("{}[=1", "k".repeat(5000));
        match parse(&body) {
            Err(FormError::MalformedKey(k)) => assert_eq!(k.chars().count(), 100),
            other => panic!("{other:?}"),
        }
    }
}
