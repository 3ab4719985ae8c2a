//! `application/x-www-form-urlencoded` bodies with PHP bracket paths
//! (`leads[update][0][custom_fields][1][values][0][enum]=42`), the keys
//! percent-encoded or not, read into an ordered tree. JSON bodies (Bitrix24
//! documents its events as JSON) read into the same tree, so one reader
//! serves both.

use serde_json::Value;

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
pub fn parse(body: &str) -> Result<Node, FormError> {
    let body = body.trim_start_matches('\u{feff}').trim();
    if body.is_empty() {
        return Err(FormError::Empty);
    }
    if body.starts_with('{') {
        let value: Value =
            serde_json::from_str(body).map_err(|e| FormError::NotJson(e.to_string()))?;
        if has_nul(&value) {
            return Err(FormError::Nul);
        }
        return Ok(from_json(&value));
    }
    let mut root = Node::Branch(Vec::new());
    for (key, value) in form_urlencoded::parse(body.as_bytes()) {
        if key.contains('\0') || value.contains('\0') {
            return Err(FormError::Nul);
        }
        if key.is_empty() {
            continue;
        }
        insert(&mut root, &split_key(&key)?, value.into_owned());
    }
    Ok(root)
}

/// `a[b][0]` → `["a", "b", "0"]`; `a[]` appends (an empty part).
fn split_key(key: &str) -> Result<Vec<String>, FormError> {
    let malformed = || FormError::MalformedKey(key.to_owned());
    let (base, mut rest) = match key.find('[') {
        Some(i) => key.split_at(i),
        None => (key, ""),
    };
    if base.is_empty() {
        return Err(malformed());
    }
    let mut parts = vec![base.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(malformed)?;
        let end = inner.find(']').ok_or_else(malformed)?;
        parts.push(inner[..end].to_owned());
        rest = &inner[end + 1..];
    }
    Ok(parts)
}

fn insert(node: &mut Node, path: &[String], value: String) {
    let Some((first, rest)) = path.split_first() else {
        *node = Node::Leaf(value);
        return;
    };
    if let Node::Leaf(_) = node {
        *node = Node::Branch(Vec::new());
    }
    let Node::Branch(children) = node else {
        return;
    };
    let name = if first.is_empty() {
        children.len().to_string()
    } else {
        first.clone()
    };
    let i = match children.iter().position(|(k, _)| *k == name) {
        Some(i) => i,
        None => {
            children.push((name, Node::Branch(Vec::new())));
            children.len() - 1
        }
    };
    // The last value of a repeated key wins, as in PHP.
    insert(&mut children[i].1, rest, value);
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

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
}
