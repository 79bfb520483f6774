//! Loader: bytes of a workflow file to a [`Node`] tree, with every limit enforced.
//!
//! Untrusted input is bounded here: file size, UTF-8, nesting depth, node count,
//! alias expansion (no "billion laughs"), one document per file.

use std::path::Path;
use std::sync::Arc;

use super::node::{Node, Value};
use super::span::{SourceFile, Span};
use super::yaml::{self, Limits, YamlError};
use crate::dsl::diagnostic::{Code, Diagnostic};

/// A workflow file may be at most this large.
pub(crate) const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Mappings and lists may nest at most this deep.
pub(crate) const MAX_DEPTH: usize = 48;
/// At most this many YAML nodes, aliases expanded.
pub(crate) const MAX_NODES: usize = 200_000;

/// A loaded file: its source (always, for rendering) and its tree, or why not.
pub(crate) struct Loaded {
    pub file: Arc<SourceFile>,
    pub root: Result<Node, Diagnostic>,
}

impl Loaded {
    /// The `name:` the file declares, if it parsed and has one.
    pub(crate) fn declared_name(&self) -> Option<&str> {
        self.root.as_ref().ok()?.get("name")?.as_str()
    }

    /// Whether the file parsed and has a `triggers:` list with something in it.
    pub(crate) fn declares_triggers(&self) -> bool {
        let triggers = self.root.as_ref().ok().and_then(|root| root.get("triggers"));
        triggers.is_some_and(|t| !t.items().is_empty())
    }
}

/// Reads and parses a file from disk.
pub(crate) fn load_path(path: &Path) -> Loaded {
    match read_bounded(path) {
        Ok(bytes) => load_owned(path, bytes),
        Err(diagnostic) => Loaded { file: SourceFile::new(path, String::new()), root: Err(diagnostic) },
    }
}

/// A file's bytes, at most one more than a workflow file may hold (so a larger
/// one is told apart), or why it cannot be read.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    crate::base::file::read_regular(path, MAX_FILE_BYTES as u64)
        .map_err(|e| Diagnostic::new(Code::Io, Span::default(), format!("cannot read the file: {e}")))
}

/// Parses bytes that claim to be a workflow file.
pub(crate) fn load_bytes(path: &Path, bytes: &[u8]) -> Loaded {
    load_owned(path, bytes.to_vec())
}

/// Parses bytes that claim to be a workflow file, keeping them as its text.
pub(crate) fn load_owned(path: &Path, bytes: Vec<u8>) -> Loaded {
    if bytes.len() > MAX_FILE_BYTES {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
        let message = format!("the file is larger than {} KiB, the most a workflow file may be", MAX_FILE_BYTES / 1024);
        return failed(path, text, Diagnostic::new(Code::TooLarge, Span::default(), message));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let utf8_error = e.utf8_error();
            return not_utf8(path, e.as_bytes(), utf8_error);
        }
    };
    if let Some(at) = text.find('\0') {
        let message = "the file holds a NUL byte: it looks binary, not YAML text";
        return failed(path, text, Diagnostic::new(Code::Encoding, Span::new(at, at + 1), message));
    }
    let file = SourceFile::new(path, text);
    let root = parse(&file).and_then(|root| require_mapping(&file, root));
    Loaded { file, root }
}

fn failed(path: &Path, text: String, diagnostic: Diagnostic) -> Loaded {
    Loaded { file: SourceFile::new(path, text), root: Err(diagnostic) }
}

fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> Loaded {
    let at = e.valid_up_to();
    let text = String::from_utf8_lossy(bytes).into_owned();
    // Lossy decoding keeps the valid prefix as it is, so `at` is a boundary in `text`.
    let diagnostic = Diagnostic::new(
        Code::Encoding,
        Span::new(at, at + 1),
        format!("the file is not UTF-8 text: byte {at} is 0x{:02x}", bytes[at]),
    )
    .help("save the file as UTF-8");
    failed(path, text, diagnostic)
}

/// The bounds a workflow file is parsed under.
pub(crate) const LIMITS: Limits = Limits { max_depth: MAX_DEPTH, max_nodes: MAX_NODES, max_anchors: 10_000 };

fn parse(file: &SourceFile) -> Result<Node, Diagnostic> {
    yaml::parse(&file.text, LIMITS).map_err(|e| yaml_diagnostic(file, e))
}

fn yaml_diagnostic(file: &SourceFile, e: YamlError) -> Diagnostic {
    let one = |at: usize| file.snap(Span::new(at, at + 1));
    match e {
        YamlError::Syntax { at, message } => {
            Diagnostic::new(Code::Yaml, one(at), format!("this is not valid YAML: {message}"))
        }
        YamlError::Limit { at, message } => Diagnostic::new(
            Code::YamlLimit,
            one(at),
            format!("the YAML is too large once expanded, or nests too deeply: {message}"),
        )
        .help(format!("a workflow may nest {MAX_DEPTH} levels and hold {MAX_NODES} values, aliases expanded")),
        YamlError::DuplicateKey { span, key } => {
            Diagnostic::new(Code::DuplicateKey, span, format!("the key `{key}` appears twice in this mapping"))
                .help("each key may appear once; remove or rename one of them")
        }
        YamlError::MultipleDocuments { at } => Diagnostic::new(
            Code::Yaml,
            one(at),
            "a workflow file holds one YAML document; remove the `---` separator and what follows, or move it to a file of its own",
        ),
        YamlError::Unsupported { span, message } => Diagnostic::new(Code::Yaml, span, message),
    }
}

fn require_mapping(file: &SourceFile, root: Node) -> Result<Node, Diagnostic> {
    let what = match &root.value {
        Value::Map(_) => return Ok(root),
        Value::Null => "the file is empty",
        Value::Seq(_) => "the top level is a list",
        _ => "the top level is a single value",
    };
    let span = if file.text.trim().is_empty() { Span::default() } else { root.span };
    Err(Diagnostic::new(
        Code::WrongType,
        span,
        format!("{what}; a workflow is a mapping with at least `name` and `steps`"),
    )
    .help("start with `name: my_workflow` and a `steps:` list"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Loaded {
        load_bytes(Path::new("t.yaml"), text.as_bytes())
    }

    #[test]
    fn rejects_what_is_not_a_workflow_mapping() {
        for (text, code) in [
            ("", Code::WrongType),
            ("- a\n", Code::WrongType),
            ("a: [1\n", Code::Yaml),
            ("a: 1\na: 2\n", Code::DuplicateKey),
            ("a: 1\n---\nb: 2\n", Code::Yaml),
        ] {
            let loaded = load(text);
            assert_eq!(loaded.root.err().map(|d| d.code), Some(code), "{text:?}");
        }
    }

    #[test]
    fn reads_yaml_1_2_booleans_only() {
        let root = load("on: [yes, no, true]\n").root.expect("parses");
        let on = root.get("on").expect("`on` stays a text key");
        let values: Vec<_> = on.items().iter().map(|n| n.value.clone()).collect();
        assert_eq!(values, vec![Value::String("yes".into()), Value::String("no".into()), Value::Bool(true)]);
    }

    #[test]
    fn bounds_depth_and_aliases() {
        let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(load(&deep).root.err().map(|d| d.code), Some(Code::YamlLimit));
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..10u8 {
            let (me, prev) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            let refs = vec![format!("*{prev}"); 10].join(",");
            bomb.push_str(&format!("{me}: &{me} [{refs}]\n"));
        }
        assert_eq!(load(&bomb).root.err().map(|d| d.code), Some(Code::YamlLimit));
    }

    #[test]
    fn rejects_bytes_that_are_not_text() {
        let loaded = load_bytes(Path::new("t.yaml"), b"name: a\xff\n");
        let d = loaded.root.expect_err("not utf-8");
        assert_eq!((d.code, d.span.start), (Code::Encoding, 7));
        let loaded = load_bytes(Path::new("t.yaml"), b"name: a\0\n");
        assert_eq!(loaded.root.err().map(|d| d.code), Some(Code::Encoding));
    }
}
