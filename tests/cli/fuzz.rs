//! Property tests: any bytes, and any mutation of a valid file, end in
//! diagnostics or a clean pass: never a panic, a hang or unbounded memory.

use std::path::Path;

use proptest::prelude::*;
use sagaflow::fuzzing::check_text;

const VALID: &str = include_str!("../corpus/valid/every_key.yaml");

fn check(bytes: &[u8]) {
    let checked = check_text(Path::new("fuzz.yaml"), bytes, sagaflow::fuzzing::builtin());
    for d in &checked.report.diagnostics {
        // Every diagnostic points inside the file and renders.
        assert!(d.span.start <= checked.report.file.text.len());
    }
    let _ = sagaflow::fuzzing::human(std::slice::from_ref(&checked.report), false);
    let _ = sagaflow::fuzzing::json(std::slice::from_ref(&checked.report));
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    InsertText(usize, String),
    SwapLines(usize, usize),
    DuplicateLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = 0..VALID.len();
    prop_oneof![
        (pos.clone(), 1usize..40).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (pos.clone(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (
            pos.clone(),
            prop_oneof![
                Just("{{".to_owned()),
                Just("}}".to_owned()),
                Just(": ".to_owned()),
                Just("\n  - ".to_owned()),
                Just("&a ".to_owned()),
                Just("*a".to_owned()),
                Just("[".to_owned()),
                Just("\"".to_owned()),
                Just("needs: [first]\n".to_owned()),
                Just("{{#each x}}".to_owned()),
                "[a-z_.{}]{1,12}",
            ]
        )
            .prop_map(|(p, s)| Mutation::InsertText(p, s)),
        (0usize..60, 0usize..60).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (0usize..60).prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = VALID.as_bytes().to_vec();
    for m in mutations {
        match m {
            Mutation::Delete(p, n) => {
                let p = (*p).min(bytes.len());
                let end = (p + n).min(bytes.len());
                bytes.drain(p..end);
            }
            Mutation::Insert(p, b) => {
                let p = (*p).min(bytes.len());
                bytes.splice(p..p, b.iter().copied());
            }
            Mutation::InsertText(p, s) => {
                let p = (*p).min(bytes.len());
                bytes.splice(p..p, s.bytes());
            }
            Mutation::SwapLines(a, b) => {
                let mut lines: Vec<Vec<u8>> = bytes.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                lines.swap(a % n, b % n);
                bytes = lines.join(&b'\n');
            }
            Mutation::DuplicateLine(a) => {
                let mut lines: Vec<Vec<u8>> = bytes.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                let line = lines[a % n].clone();
                lines.insert(a % n, line);
                bytes = lines.join(&b'\n');
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\n\t]{0,600}") {
        check(text.as_bytes());
    }

    #[test]
    fn mutations_of_a_valid_file_never_panic(mutations in proptest::collection::vec(mutation(), 1..6)) {
        check(&apply(&mutations));
    }
}

#[test]
fn hostile_inputs_end_in_clear_errors() {
    let mut bomb = String::from("name: bomb\nsteps:\n  - id: a\n    action: mock\n    with:\n      output: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("      o{i}: &a{i} [{refs}]\n"));
    }
    let deep = format!("name: deep\nsteps: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let huge = format!("name: huge\nsteps:\n{}", "  - id: a\n    action: mock\n".repeat(60_000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bomb", bomb.into_bytes(), "yaml-limit"),
        ("deep", deep.into_bytes(), "yaml-limit"),
        ("huge", huge.into_bytes(), "too-large"),
        ("binary", vec![0x7f, b'E', b'L', b'F', 0, 1, 2], "encoding"),
        ("latin1", b"name: caf\xe9\nsteps: []\n".to_vec(), "encoding"),
        ("empty", Vec::new(), "wrong-type"),
    ];
    for (name, bytes, code) in cases {
        let checked = check_text(Path::new(name), &bytes, sagaflow::fuzzing::builtin());
        let codes: Vec<_> = checked.report.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, vec![code], "{name}");
    }
}
