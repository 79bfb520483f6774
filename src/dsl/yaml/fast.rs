//! A fast path for the YAML most workflow files are written in: block mappings
//! and lists laid out by indentation, one-line plain and quoted scalars, one-line
//! flow collections, comments. Anything else (anchors, aliases, tags, block and
//! multi-line scalars, multi-line flow collections, explicit keys, directives,
//! document markers, tabs, carriage returns, rare escapes, deep nesting) returns
//! `None` and goes to granit-parser, as does every text that is not valid YAML.
//!
//! For what it accepts it gives exactly granit's events and spans, so the one
//! [`super::Builder`] turns either into the same tree: a property test holds the
//! two together. It reads a text about six times faster than the general parser.

use std::borrow::Cow;

use granit_parser::{Event, ScalarStyle, StructureStyle};

use crate::dsl::span::Span;

/// The events of one document, as granit-parser would give them (without the
/// stream and document end events, which the builder does not read).
#[cfg(test)]
pub(super) type Events<'a> = Vec<(Event<'a>, Span)>;

/// Collections nested deeper than this go to the general parser.
const MAX_NESTING: usize = 32;
/// Longer implicit keys are an error in YAML: the general parser says so.
const MAX_KEY_BYTES: usize = 1024;

/// Hands the events of `text` to `sink` one by one, as they are read (no list
/// of them is kept: a large file costs no more than its tree). False when
/// `text` is not within the fast subset: some events may have been handed
/// over by then, and the caller starts again with the general parser.
pub(super) fn feed<'a>(text: &'a str, sink: &mut dyn FnMut(Event<'a>, Span)) -> bool {
    if !within_subset(text) {
        return false;
    }
    let mut fast = Fast { text, b: text.as_bytes(), out: sink, depth: 0 };
    fast.document().is_some()
}

/// The events of `text` when it is within the fast subset.
#[cfg(test)]
pub(super) fn events(text: &str) -> Option<Events<'_>> {
    let mut out = Vec::new();
    feed(text, &mut |event, span| out.push((event, span))).then_some(out)
}

/// Printable text with `\n` line ends, no tabs, no byte-order mark and no line
/// that starts with a document marker or a directive.
fn within_subset(text: &str) -> bool {
    let b = text.as_bytes();
    let mut ascii = true;
    let mut line_start = true;
    for (i, &c) in b.iter().enumerate() {
        if line_start && (c == b'%' || b[i..].starts_with(b"---") || b[i..].starts_with(b"...")) {
            return false;
        }
        line_start = c == b'\n';
        if (c < 0x20 && c != b'\n') || c == 0x7f {
            return false;
        }
        ascii &= c < 0x80;
    }
    ascii || text.chars().all(printable)
}

/// YAML's printable characters, less the ones some parsers take as breaks or marks.
fn printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{2027}' | '\u{202a}'..='\u{d7ff}' | '\u{e000}'..='\u{fefe}' | '\u{ff00}'..='\u{fffd}')
        || c >= '\u{10000}'
}

struct Fast<'a, 's> {
    text: &'a str,
    b: &'a [u8],
    out: &'s mut dyn FnMut(Event<'a>, Span),
    depth: usize,
}

/// A line that holds content: where it starts and where its content starts.
#[derive(Clone, Copy)]
struct Line {
    start: usize,
    content: usize,
}

impl Line {
    fn indent(self) -> usize {
        self.content - self.start
    }
}

/// How a plain scalar in block context ends: `Key` at its `:`, `Value` at its end.
enum PlainEnd {
    Key(usize),
    Value(usize),
}

/// A key read on a line: its event, and where its `:` is.
struct Key<'a> {
    event: Event<'a>,
    span: Span,
    colon: usize,
}

impl<'a> Fast<'a, '_> {
    fn document(&mut self) -> Option<()> {
        let Some(line) = self.next_line(0) else { return Some(()) };
        self.emit(Event::DocumentStart(false, None), line.content, line.content);
        let next = self.block_value(line, line.content, None, true)?;
        match next {
            Some(_) => None,
            None => Some(()),
        }
    }

    /// The node at `at` on `line`, inside a block collection of indent `container`
    /// (`None` at the top). `block` says a block collection may start here (it may
    /// not after `key: ` on the same line). Gives the next content line.
    fn block_value(&mut self, line: Line, at: usize, container: Option<usize>, block: bool) -> Option<Option<Line>> {
        let column = at - line.start;
        if self.is_entry(at) {
            return if block { self.nested(|f| f.block_sequence(line, at, column, false)) } else { None };
        }
        if let Some(key) = self.key(at)? {
            return if block { self.nested(|f| f.block_mapping(line, key, column)) } else { None };
        }
        let end = self.inline(at)?;
        let next = self.next_line(self.rest_of_line(end)?);
        match (next, container) {
            (Some(n), Some(c)) if n.indent() > c => None,
            (Some(_), None) => None,
            _ => Some(next),
        }
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Option<Option<Line>>) -> Option<Option<Line>> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return None;
        }
        let next = f(self);
        self.depth -= 1;
        next
    }

    /// A block mapping whose first key, already read, starts the mapping at `indent`.
    fn block_mapping(&mut self, mut line: Line, first: Key<'a>, indent: usize) -> Option<Option<Line>> {
        self.emit(Event::MappingStart(StructureStyle::Block, 0, None), first.span.start, first.span.start);
        let mut key = first;
        loop {
            (self.out)(key.event, key.span);
            let next = self.mapping_value(line, key.colon, indent)?;
            match next {
                Some(n) if n.indent() == indent => {
                    if self.is_entry(n.content) {
                        return None;
                    }
                    key = self.key(n.content)??;
                    line = n;
                }
                Some(n) if n.indent() > indent => return None,
                _ => {
                    self.emit(Event::MappingEnd, 0, 0);
                    return Some(next);
                }
            }
        }
    }

    /// The value after the `:` at `colon` of a key in a mapping at `indent`.
    fn mapping_value(&mut self, line: Line, colon: usize, indent: usize) -> Option<Option<Line>> {
        let value = self.skip_spaces(colon + 1);
        if !self.ends_line(colon + 1, value) {
            return self.block_value(line, value, Some(indent), false);
        }
        let next = self.next_line(self.line_end(value) + 1);
        match next {
            Some(n) if n.indent() > indent => self.block_value(n, n.content, Some(indent), true),
            Some(n) if n.indent() == indent && self.is_entry(n.content) => {
                self.nested(|f| f.block_sequence(n, n.content, indent, true))
            }
            _ => {
                self.emit_null(colon);
                Some(next)
            }
        }
    }

    /// A block list whose first `-` is at `dash`. An indentless list (the value of
    /// a key at its own indent) starts where its first item does, as granit says.
    fn block_sequence(
        &mut self,
        mut line: Line,
        mut dash: usize,
        indent: usize,
        indentless: bool,
    ) -> Option<Option<Line>> {
        let start = if indentless { self.item_start(dash) } else { dash };
        self.emit(Event::SequenceStart(StructureStyle::Block, 0, None), start, start);
        loop {
            let value = self.skip_spaces(dash + 1);
            let next = if self.ends_line(dash + 1, value) {
                match self.next_line(self.line_end(value) + 1) {
                    Some(n) if n.indent() > indent => self.block_value(n, n.content, Some(indent), true)?,
                    next => {
                        self.emit_null(self.item_start(dash));
                        next
                    }
                }
            } else {
                self.block_value(line, value, Some(indent), true)?
            };
            match next {
                Some(n) if n.indent() == indent && self.is_entry(n.content) => {
                    line = n;
                    dash = n.content;
                }
                Some(n) if n.indent() > indent || (n.indent() == indent && !indentless) => return None,
                _ => {
                    self.emit(Event::SequenceEnd, 0, 0);
                    return Some(next);
                }
            }
        }
    }

    /// Where granit places what follows a `-`: after blanks and a comment, before
    /// the line break (an indentless list starts there, an empty item is there).
    fn item_start(&self, dash: usize) -> usize {
        let at = self.skip_spaces(dash + 1);
        if self.b.get(at) == Some(&b'#') {
            self.line_end(at)
        } else {
            at
        }
    }

    /// A key and its `:` at `at`; `Some(None)` when the line holds no key there.
    fn key(&self, at: usize) -> Option<Option<Key<'a>>> {
        let (event, end) = match self.b[at] {
            b'"' | b'\'' => self.quoted(at)?,
            c if starts_plain(c, self.b.get(at + 1).copied()) => {
                let PlainEnd::Key(colon) = self.plain_block(at) else { return Some(None) };
                let end = trim_end(self.b, at, colon);
                let text = &self.text[at..end];
                if text.bytes().any(|c| matches!(c, b'[' | b']' | b'{' | b'}' | b',')) {
                    return None;
                }
                (plain(text), end)
            }
            _ => return Some(None),
        };
        let colon = self.skip_spaces(end);
        if self.b.get(colon) != Some(&b':') || !self.blank_or_end(colon + 1) || end - at > MAX_KEY_BYTES {
            return Some(None);
        }
        Some(Some(Key { event, span: Span::new(at, end), colon }))
    }

    /// A one-line scalar or flow collection in block context; gives its end.
    fn inline(&mut self, at: usize) -> Option<usize> {
        match self.b[at] {
            b'[' | b'{' => self.flow(at),
            b'"' | b'\'' => self.quoted_scalar(at),
            c if starts_plain(c, self.b.get(at + 1).copied()) => {
                // A `: ` inside would make it a key (or an error): not for the fast path.
                let PlainEnd::Value(end) = self.plain_block(at) else { return None };
                self.emit(plain(&self.text[at..end]), at, end);
                Some(end)
            }
            _ => None,
        }
    }

    /// Where a plain scalar in block context that starts at `at` ends: at a `: `
    /// (it is a key), or at the line's end or a comment (it is a value).
    fn plain_block(&self, at: usize) -> PlainEnd {
        let mut i = at;
        while i < self.b.len() {
            match self.b[i] {
                b'\n' => break,
                b':' if self.blank_or_end(i + 1) => return PlainEnd::Key(i),
                b'#' if self.b[i - 1] == b' ' => break,
                _ => i += 1,
            }
        }
        PlainEnd::Value(trim_end(self.b, at, i))
    }

    /// A flow collection on one line; gives its end.
    fn flow(&mut self, at: usize) -> Option<usize> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return None;
        }
        let end = if self.b[at] == b'[' { self.flow_sequence(at) } else { self.flow_mapping(at) };
        self.depth -= 1;
        end
    }

    fn flow_sequence(&mut self, at: usize) -> Option<usize> {
        self.emit(Event::SequenceStart(StructureStyle::Flow, 0, None), at, at + 1);
        let mut i = self.skip_spaces(at + 1);
        loop {
            if self.b.get(i) == Some(&b']') {
                self.emit(Event::SequenceEnd, i, i + 1);
                return Some(i + 1);
            }
            let end = self.flow_node(i)?;
            i = self.skip_spaces(end);
            match self.b.get(i) {
                Some(b',') => i = self.skip_spaces(i + 1),
                Some(b']') => {}
                _ => return None,
            }
        }
    }

    fn flow_mapping(&mut self, at: usize) -> Option<usize> {
        self.emit(Event::MappingStart(StructureStyle::Flow, 0, None), at, at + 1);
        let mut i = self.skip_spaces(at + 1);
        loop {
            if self.b.get(i) == Some(&b'}') {
                self.emit(Event::MappingEnd, i, i + 1);
                return Some(i + 1);
            }
            if matches!(self.b.get(i), Some(b'[' | b'{')) {
                return None;
            }
            let key_end = self.flow_node(i)?;
            let after = self.skip_spaces(key_end);
            i = match self.b.get(after) {
                Some(b':') if matches!(self.b.get(after + 1), Some(b' ' | b',' | b'}')) => {
                    let value = self.skip_spaces(after + 1);
                    if matches!(self.b.get(value), Some(b',' | b'}')) {
                        self.emit_null(after);
                        value
                    } else {
                        let end = self.flow_node(value)?;
                        self.skip_spaces(end)
                    }
                }
                Some(b',' | b'}') => {
                    self.emit_null(after);
                    after
                }
                _ => return None,
            };
            match self.b.get(i) {
                Some(b',') => i = self.skip_spaces(i + 1),
                Some(b'}') => {}
                _ => return None,
            }
        }
    }

    /// A scalar or collection inside a flow collection; gives its end.
    fn flow_node(&mut self, at: usize) -> Option<usize> {
        match *self.b.get(at)? {
            b'[' | b'{' => self.flow(at),
            b'"' | b'\'' => self.quoted_scalar(at),
            c if starts_plain(c, self.b.get(at + 1).copied())
                && !(c == b'-' && matches!(self.b.get(at + 1), Some(b',' | b']' | b'}'))) =>
            {
                let end = self.plain_flow_end(at);
                if end == at {
                    return None;
                }
                self.emit(plain(&self.text[at..end]), at, end);
                Some(end)
            }
            _ => None,
        }
    }

    /// The end of a plain scalar in flow context: a flow indicator, a `: `, a
    /// comment or the line's end (the caller decides which may follow).
    fn plain_flow_end(&self, at: usize) -> usize {
        let mut i = at;
        while i < self.b.len() {
            match self.b[i] {
                b'\n' | b',' | b'[' | b']' | b'{' | b'}' => break,
                b':' if matches!(self.b.get(i + 1), None | Some(b' ' | b'\n' | b',' | b'[' | b']' | b'{' | b'}')) => {
                    break
                }
                b'#' if self.b[i - 1] == b' ' => break,
                _ => i += 1,
            }
        }
        trim_end(self.b, at, i)
    }

    /// Emits the one-line quoted scalar at `at`; gives its end.
    fn quoted_scalar(&mut self, at: usize) -> Option<usize> {
        let (event, end) = self.quoted(at)?;
        self.emit(event, at, end);
        Some(end)
    }

    /// A one-line quoted scalar at `at`: its event and its end after the quote.
    fn quoted(&self, at: usize) -> Option<(Event<'a>, usize)> {
        let quote = self.b[at];
        let (style, escape) =
            if quote == b'"' { (ScalarStyle::DoubleQuoted, b'\\') } else { (ScalarStyle::SingleQuoted, b'\'') };
        let mut owned: Option<String> = None;
        let mut from = at + 1;
        let mut i = from;
        loop {
            let c = *self.b.get(i)?;
            if c == b'\n' {
                return None;
            }
            let unescaped = if c == escape && quote == b'\'' && self.b.get(i + 1) == Some(&b'\'') {
                '\''
            } else if c == quote {
                break;
            } else if c == escape && quote == b'"' {
                unescape(*self.b.get(i + 1)?)?
            } else {
                i += 1;
                continue;
            };
            let s = owned.get_or_insert_with(String::new);
            s.push_str(&self.text[from..i]);
            s.push(unescaped);
            i += 2;
            from = i;
        }
        let text = match owned {
            Some(mut s) => {
                s.push_str(&self.text[from..i]);
                Cow::Owned(s)
            }
            None => Cow::Borrowed(&self.text[from..i]),
        };
        Some((Event::Scalar(text, style, 0, None), i + 1))
    }

    /// After a value ending at `end`: the rest of its line must be blank or a
    /// comment. Gives where the next line starts.
    fn rest_of_line(&self, end: usize) -> Option<usize> {
        let at = self.skip_spaces(end);
        self.ends_line(end, at).then(|| self.line_end(at) + 1)
    }

    /// Whether the content at `at` (after blanks from `from`) ends the line: a
    /// line break, the text's end, or a comment after a blank.
    fn ends_line(&self, from: usize, at: usize) -> bool {
        match self.b.get(at) {
            None | Some(b'\n') => true,
            Some(b'#') => at > from,
            _ => false,
        }
    }

    /// The next line from `start` that holds content (blank and comment lines skipped).
    fn next_line(&self, mut start: usize) -> Option<Line> {
        while start < self.b.len() {
            let content = self.skip_spaces(start);
            match self.b.get(content) {
                None => return None,
                Some(b'\n') => start = content + 1,
                Some(b'#') => start = self.line_end(content) + 1,
                Some(_) => return Some(Line { start, content }),
            }
        }
        None
    }

    /// A `-` that starts a block list item.
    fn is_entry(&self, at: usize) -> bool {
        self.b[at] == b'-' && self.blank_or_end(at + 1)
    }

    fn blank_or_end(&self, at: usize) -> bool {
        matches!(self.b.get(at), None | Some(b' ' | b'\n'))
    }

    fn skip_spaces(&self, mut at: usize) -> usize {
        while self.b.get(at) == Some(&b' ') {
            at += 1;
        }
        at
    }

    fn line_end(&self, at: usize) -> usize {
        self.b[at.min(self.b.len())..].iter().position(|&c| c == b'\n').map_or(self.b.len(), |i| at + i)
    }

    /// An empty value: granit's `~` scalar, with no width, at `at`.
    fn emit_null(&mut self, at: usize) {
        self.emit(plain("~"), at, at);
    }

    fn emit(&mut self, event: Event<'a>, start: usize, end: usize) {
        (self.out)(event, Span::new(start, end));
    }
}

fn plain(text: &str) -> Event<'_> {
    Event::Scalar(Cow::Borrowed(text), ScalarStyle::Plain, 0, None)
}

/// Whether a plain scalar may start with `c` (followed by `next`): not an
/// indicator, except `-` before something other than a blank.
fn starts_plain(c: u8, next: Option<u8>) -> bool {
    match c {
        b'-' => !matches!(next, None | Some(b' ' | b'\n')),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"'
        | b'%' | b'@' | b'`' | b' ' | b'\n' => false,
        _ => true,
    }
}

/// The character a double-quoted escape `\c` stands for, among the common ones.
fn unescape(c: u8) -> Option<char> {
    Some(match c {
        b'\\' => '\\',
        b'"' => '"',
        b'/' => '/',
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        _ => return None,
    })
}

fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && b[end - 1] == b' ' {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An event as the builder reads it: kind, text, style and span (ends have no span it reads).
    fn describe(event: &Event, span: Span) -> Option<String> {
        Some(match event {
            Event::Scalar(text, style, anchor, tag) => format!("{text:?} {style:?} {anchor} {tag:?} {span:?}"),
            Event::SequenceStart(style, anchor, tag) => format!("[ {style:?} {anchor} {tag:?} {span:?}"),
            Event::MappingStart(style, anchor, tag) => format!("{{ {style:?} {anchor} {tag:?} {span:?}"),
            Event::SequenceEnd => "]".into(),
            Event::MappingEnd => "}".into(),
            Event::Alias(id) => format!("*{id}"),
            Event::DocumentStart(..) => "---".into(),
            _ => return None,
        })
    }

    fn granit(text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for item in granit_parser::Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| e.to_string())?;
            out.extend(describe(&event, super::super::byte_span(&span)));
        }
        Ok(out)
    }

    /// Whatever the fast path accepts, granit accepts, with the same events.
    fn agrees(text: &str) -> Result<bool, String> {
        let Some(fast) = events(text) else { return Ok(false) };
        let fast: Vec<String> = fast.iter().filter_map(|(e, s)| describe(e, *s)).collect();
        match granit(text) {
            Ok(slow) if slow == fast => Ok(true),
            Ok(slow) => {
                let at = fast.iter().zip(&slow).position(|(a, b)| a != b).unwrap_or(fast.len().min(slow.len()));
                Err(format!("{text:?}\n event {at}: fast {:?}, granit {:?}", fast.get(at), slow.get(at)))
            }
            Err(e) => Err(format!("{text:?}\n fast accepted, granit: {e}")),
        }
    }

    fn yaml_files(dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if path.is_dir() {
                yaml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.extend(std::fs::read_to_string(&path).ok());
            }
        }
    }

    #[test]
    fn agrees_with_granit_on_every_file_of_the_project() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        yaml_files(&root.join("workflows"), &mut texts);
        yaml_files(&root.join("tests"), &mut texts);
        let mut accepted = 0;
        for text in &texts {
            accepted += usize::from(agrees(text).unwrap_or_else(|e| panic!("{e}")));
        }
        assert!(accepted * 2 > texts.len(), "the fast path took only {accepted} of {} files", texts.len());
    }

    #[test]
    fn takes_the_generated_benchmark_files() {
        for i in 0..5 {
            assert_eq!(agrees(&crate::dsl::sample::workflow(i, 20)), Ok(true));
        }
    }

    const SNIPPETS: &[&str] = &[
        "a: 1\nb:\n  c: x y  # hi\n  d: \"q\\\"\" \ne:\n- 1\n- k: v\n  j: [1, {x: y}, \"s\"]\nf:\ng: {}\nh: []\n",
        "a:   # c\nb:\n  -\n  - x\n  -   # c\n    y: 1\nc: {a: , b}\nd: \"x\"   \n",
        "k:",
        "- a\n-\n",
        "e:\n-\n- x\n",
        "e:\n-   # c\n  a: 1\n",
        "e:\n- - x\n",
        "\"q\": 1\nk  : v\n'it''s': 'a''b'\n",
        "a: [1, ]\nb: {x: 1, }\nc: {a:}\n",
        "- a: 1\n  b:\n  - 2\n  c: 3\n",
        "url: http://x.y/z?q=1#f\nt: a#b\nn: -3\nm: -x\np: a, b [c] {d}\n",
        "# only a comment\n",
        "",
        "  a: 1\n  b: 2\n",
        "a:\n  hello\nb: 2\n",
        "a: \"x\\ty\\n\\\\\\/\"\nb: 'é ü'\nc: ünï\n",
        "a:\n    - x\n    -\n      y: 1\n",
        "[a, [b, {c: d}], \"e\"]\n",
        "{a: 1}\n",
        "plain text\n",
        "a: {x: [1, 2], y: {z: w}}\n",
        "a: 1 # c\n# c\n\n  # c\nb: 2\n",
        "-\n  - x\n",
        "a:\n-\n  b: 1\n",
        "a: 'x' # c\nb: \"y\"#c\n",
    ];

    #[test]
    fn agrees_with_granit_on_the_shapes_it_takes_and_leaves_the_rest() {
        for text in SNIPPETS {
            agrees(text).unwrap_or_else(|e| panic!("{e}"));
        }
        for text in [
            "a: &x 1\n",
            "a: *x\n",
            "a: !t 1\n",
            "a: |\n  x\n",
            "a: >\n  x\n",
            "---\na: 1\n",
            "a:\tb\n",
            "a: 1\r\n",
            "a: \"x\n  y\"\n",
            "a: [1,\n 2]\n",
            "? a\n: 1\n",
            "a: b\n  c\n",
            "a: b: c\n",
            "a:\n  b: 1\n c: 2\n",
            "- a\nb: 1\n",
            "a: \"\\x41\"\n",
        ] {
            assert!(events(text).is_none(), "{text:?}");
        }
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Insert(usize, &'static str),
        Delete(usize, usize),
    }

    const PIECES: &[&str] = &[
        " ", "  ", "\n", "\n  ", "\n    ", "\n -", "\n- ", "- ", ":", ": ", "#", " #", "\"", "'", "[", "]", "{", "}",
        ",", "a", "1", "\\", "-", "~", "é", "k: v\n", "?", "|", ">", "&a ", "*a", "!", "\t", "\r", "@", "%", "---",
        "\"a\":", "<<: ", "\u{a0}", "\u{feff}", "\u{85}",
    ];

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0usize..400, proptest::sample::select(PIECES)).prop_map(|(p, s)| Edit::Insert(p, s)),
            (0usize..400, 1usize..6).prop_map(|(p, n)| Edit::Delete(p, n)),
        ]
    }

    fn apply(base: &str, edits: &[Edit]) -> String {
        let mut text = base.to_owned();
        for e in edits {
            let at = |p: usize, t: &str| (0..=p.min(t.len())).rev().find(|&i| t.is_char_boundary(i)).unwrap_or(0);
            match e {
                Edit::Insert(p, s) => text.insert_str(at(*p, &text), s),
                Edit::Delete(p, n) => {
                    let start = at(*p, &text);
                    let end = at(start + n, &text);
                    text.replace_range(start..end, "");
                }
            }
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn edits_of_valid_yaml_agree_with_granit(base in proptest::sample::select(SNIPPETS), edits in proptest::collection::vec(edit(), 1..5)) {
            let text = apply(base, &edits);
            if let Err(e) = agrees(&text) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn edits_of_a_workflow_agree_with_granit(edits in proptest::collection::vec(edit(), 1..6)) {
            let text = apply(&crate::dsl::sample::workflow(0, 2), &edits);
            if let Err(e) = agrees(&text) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
