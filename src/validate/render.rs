//! Rendering a validation report: `human` (like rustc), `json` (the DSL.md
//! contract) and `github` (workflow-command annotations).

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde_json::json;

use crate::dsl::diagnostic::{Diagnostic, FileReport, Severity};
use crate::dsl::span::{SourceFile, Span};

/// Totals over a whole report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
}

impl Totals {
    pub(crate) fn of(reports: &[FileReport]) -> Totals {
        let all = reports.iter().flat_map(|r| &r.diagnostics);
        Totals {
            files: reports.len(),
            errors: all.clone().filter(|d| d.severity == Severity::Error).count(),
            warnings: all.filter(|d| d.severity == Severity::Warning).count(),
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// rustc-style text: every diagnostic with its source line and caret, then a summary.
pub fn human(reports: &[FileReport], color: bool) -> String {
    let renderer = if color { Renderer::styled() } else { Renderer::plain() };
    let mut out = String::new();
    for report in reports {
        for d in &report.diagnostics {
            out.push_str(&renderer.render(&groups(&report.file, d)));
            out.push_str("\n\n");
        }
    }
    let t = Totals::of(reports);
    out.push_str(&match (t.errors, t.warnings) {
        (0, 0) => format!("checked {}: no problems\n", plural(t.files, "file")),
        (e, w) => format!("checked {}: {}, {}\n", plural(t.files, "file"), plural(e, "error"), plural(w, "warning")),
    });
    out
}

fn groups<'a>(file: &'a SourceFile, d: &'a Diagnostic) -> Vec<Group<'a>> {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let path = file.path.to_str().unwrap_or("<file>");
    let (source, line_start, local) = excerpt(file, d.span);
    let mut annotation = AnnotationKind::Primary.span(local);
    if let Some(label) = &d.label {
        annotation = annotation.label(label.as_str());
    }
    let title = level.primary_title(d.message.as_str()).id(d.code.as_str());
    let mut group = title.element(Snippet::source(source).line_start(line_start).path(path).annotation(annotation));
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    let mut out = vec![group];
    if let Some(related) = &d.related {
        let (source, line_start, local) = excerpt(&related.file, related.span);
        let rpath = related.file.path.to_str().unwrap_or("<file>");
        out.push(Group::with_title(Level::NOTE.secondary_title(related.label.as_str())).element(
            Snippet::source(source).line_start(line_start).path(rpath).annotation(AnnotationKind::Primary.span(local)),
        ));
    }
    out
}

/// The lines a span covers (at most 3), their first line number, and the span within them.
fn excerpt(file: &SourceFile, span: Span) -> (&str, usize, std::ops::Range<usize>) {
    let text = file.text.as_str();
    let span = file.snap(span);
    let start = span.start;
    let line_begin = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let mut line_end = start;
    for _ in 0..3 {
        line_end = text[line_end..].find('\n').map_or(text.len(), |i| line_end + i);
        if line_end >= span.end.min(text.len()) {
            break;
        }
        line_end = (line_end + 1).min(text.len());
    }
    let excerpt = &text[line_begin..line_end];
    let local_start = start - line_begin;
    let mut local_end = span.end.min(line_end).max(start) - line_begin;
    if local_end == local_start {
        // Point at one character (or the line end) for empty spans.
        local_end = excerpt[local_start..].chars().next().map_or(local_start, |c| local_start + c.len_utf8());
    }
    (excerpt, file.line_col(line_begin).line, local_start..local_end)
}

/// The `--format json` object of DSL.md, with `end_line`, `end_column` and `help` added.
pub fn json(reports: &[FileReport]) -> serde_json::Value {
    let t = Totals::of(reports);
    let diagnostics: Vec<serde_json::Value> =
        reports.iter().flat_map(|r| r.diagnostics.iter().map(move |d| diagnostic_json(&r.file, d))).collect();
    json!({ "files": t.files, "errors": t.errors, "warnings": t.warnings, "diagnostics": diagnostics })
}

fn diagnostic_json(file: &SourceFile, d: &Diagnostic) -> serde_json::Value {
    let start = file.line_col(d.span.start);
    let end = file.line_col(d.span.end.max(d.span.start));
    let mut v = json!({
        "file": file.path.display().to_string(),
        "line": start.line,
        "column": start.column,
        "end_line": end.line,
        "end_column": end.column,
        "severity": d.severity.as_str(),
        "code": d.code.as_str(),
        "message": d.message,
    });
    if let Some(help) = &d.help {
        v["help"] = json!(help);
    }
    v
}

/// GitHub Actions workflow commands: `::error file=F,line=L,col=C::message`.
pub(crate) fn github(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for report in reports {
        for d in &report.diagnostics {
            let at = report.file.line_col(d.span.start);
            let mut message = format!("[{}] {}", d.code.as_str(), d.message);
            if let Some(help) = &d.help {
                message.push_str(&format!(" ({help})"));
            }
            out.push_str(&format!(
                "::{} file={},line={},col={},title={}::{}\n",
                d.severity.as_str(),
                escape_property(&report.file.path.display().to_string()),
                at.line,
                at.column,
                escape_property(d.code.as_str()),
                escape_data(&message)
            ));
        }
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}
