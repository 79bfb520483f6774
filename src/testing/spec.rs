//! A test file (`*.test.yaml`, beside the workflows): which workflow, and cases
//! of input, injected failures and answered events, each with what it expects.
//! Every expectation keeps its position, so a failure names its file and line.
//!
//! ```yaml
//! workflow: order_placement.yaml          # relative to this file
//! tests:
//!   - name: a declined card rolls back
//!     input: "@examples/order_placement/happy.json"   # or a mapping
//!     fail: [charge_payment=card_declined]            # as `run --fail`
//!     events: { user.email_verified: { token: abc } } # data of answered waits
//!     expect:
//!       status: compensated
//!       output: { order_id: ord-1 }                   # these fields, at least
//!       steps: { charge_payment: failed }
//!       compensations: ["reserve_stock[1]", "reserve_stock[0]"]   # in order
//!       leaks: []                                     # what the run left held
//!       sandbox:                                      # records, these fields at least
//!         inventory.product.MUG-001: { reserved: 0 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::dsl::node::{Node, Value};
use crate::dsl::span::{SourceFile, Span};

pub(crate) struct TestFile {
    pub file: Arc<SourceFile>,
    pub workflow: PathBuf,
    pub cases: Vec<Case>,
}

pub(crate) struct Case {
    pub name: String,
    pub input: Json,
    /// `--fail` texts with where they are written.
    pub fail: Vec<(String, Span)>,
    pub events: BTreeMap<String, Json>,
    pub expect: Vec<Expect>,
}

/// One expectation and where it is written.
pub(crate) struct Expect {
    pub span: Span,
    pub what: Expected,
}

pub(crate) enum Expected {
    Status(String),
    Output(Json),
    Step { id: String, status: String },
    Compensations(Vec<String>),
    Leaks(Vec<String>),
    Record { key: String, fields: Json },
}

/// `file:line:column: message`.
pub(crate) fn at(file: &SourceFile, span: Span, message: &str) -> String {
    format!("{}: {message}", file.position(span.start))
}

const CASE_KEYS: &[&str] = &["name", "input", "fail", "events", "expect"];
const EXPECT_KEYS: &[&str] = &["status", "output", "steps", "compensations", "leaks", "sandbox"];

impl TestFile {
    /// Reads a test file; an error says where and what.
    pub(crate) fn load(path: &Path) -> Result<TestFile, String> {
        let loaded = crate::dsl::loader::load_path(path);
        let file = loaded.file.clone();
        let root = loaded.root.map_err(|d| at(&file, d.span, &d.message))?;
        let p = Parser { file: file.clone() };
        p.keys(&root, &["workflow", "tests"])?;
        let workflow = p.text(p.required(&root, "workflow")?)?;
        let workflow = path.parent().unwrap_or(Path::new(".")).join(workflow);
        let tests = p.required(&root, "tests")?;
        let Value::Seq(items) = &tests.value else { return Err(p.error(tests.span, "`tests` is a list of cases")) };
        if items.is_empty() {
            return Err(p.error(tests.span, "`tests` has no case"));
        }
        let cases = items.iter().map(|c| p.case(c, path)).collect::<Result<_, _>>()?;
        Ok(TestFile { file, workflow, cases })
    }
}

struct Parser {
    file: Arc<SourceFile>,
}

impl Parser {
    fn error(&self, span: Span, message: &str) -> String {
        at(&self.file, span, message)
    }

    fn required<'n>(&self, node: &'n Node, key: &str) -> Result<&'n Node, String> {
        node.get(key).ok_or_else(|| self.error(node.span, &format!("`{key}` is missing")))
    }

    fn text(&self, node: &Node) -> Result<String, String> {
        match &node.value {
            Value::String(s) => Ok(s.clone()),
            _ => Err(self.error(node.span, "expected text here")),
        }
    }

    fn keys(&self, node: &Node, known: &[&str]) -> Result<(), String> {
        let Value::Map(entries) = &node.value else { return Err(self.error(node.span, "expected a mapping here")) };
        for e in entries {
            if !known.contains(&e.key.as_str()) {
                let hint = crate::base::suggest::did_you_mean(&e.key, known.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_else(|| format!("; the keys are {}", known.join(", ")));
                return Err(self.error(e.key_span, &format!("unknown key `{}`{hint}", e.key)));
            }
        }
        Ok(())
    }

    fn case(&self, node: &Node, path: &Path) -> Result<Case, String> {
        self.keys(node, CASE_KEYS)?;
        let name = self.text(self.required(node, "name")?)?;
        let input = match node.get("input") {
            None => Json::Object(Default::default()),
            Some(n) => match n.as_str().and_then(|s| s.strip_prefix('@')) {
                Some(file) => {
                    let file = path.parent().unwrap_or(Path::new(".")).join(file);
                    crate::base::input::read_input_file(&file).map_err(|e| self.error(n.span, &e))?
                }
                None => n.to_json(),
            },
        };
        let fail = match node.get("fail") {
            None => Vec::new(),
            Some(n) => n.items().iter().map(|f| Ok((self.text(f)?, f.span))).collect::<Result<_, String>>()?,
        };
        let events = match node.get("events") {
            None => BTreeMap::new(),
            Some(n) => n.entries().iter().map(|e| (e.key.clone(), e.value.to_json())).collect(),
        };
        let expect = self.expect(self.required(node, "expect")?)?;
        Ok(Case { name, input, fail, events, expect })
    }

    fn expect(&self, node: &Node) -> Result<Vec<Expect>, String> {
        self.keys(node, EXPECT_KEYS)?;
        let mut out = Vec::new();
        for e in node.entries() {
            let v = &e.value;
            let list = |n: &Node| n.items().iter().map(|i| self.text(i)).collect::<Result<Vec<_>, _>>();
            match e.key.as_str() {
                "status" => out.push(Expect { span: v.span, what: Expected::Status(self.text(v)?) }),
                "output" => out.push(Expect { span: v.span, what: Expected::Output(v.to_json()) }),
                "compensations" => out.push(Expect { span: v.span, what: Expected::Compensations(list(v)?) }),
                "leaks" => out.push(Expect { span: v.span, what: Expected::Leaks(list(v)?) }),
                "steps" => {
                    for s in v.entries() {
                        let what = Expected::Step { id: s.key.clone(), status: self.text(&s.value)? };
                        out.push(Expect { span: s.value.span, what });
                    }
                }
                _ => {
                    for r in v.entries() {
                        let what = Expected::Record { key: r.key.clone(), fields: r.value.to_json() };
                        out.push(Expect { span: r.key_span, what });
                    }
                }
            }
        }
        Ok(out)
    }
}
