//! `sagaflow validate` through the binary: formats, exit codes, directories.

use crate::harness::Test;

const BROKEN: &str = "name: order_placement
steps:
  - id: reserve_stock
    action: mock
    with:
      output: { reservation_id: r-1 }
  - id: charge
    action: mock
    needs: [reserve]
";

#[test]
fn human_format_renders_like_rustc() {
    Test::new()
        .file("order.yaml", BROKEN)
        .args(&["validate", "order.yaml"])
        .status(1)
        .stdout(
            "error[unknown-step]: `needs` names `reserve`, but no step has that id
 --> order.yaml:9:13
  |
9 |     needs: [reserve]
  |             ^^^^^^^
  |
  = help: did you mean `reserve_stock`?

checked 1 file: 1 error, 0 warnings
",
        )
        .run();
}

#[test]
fn human_format_shows_the_first_file_of_a_duplicate_name() {
    Test::new()
        .file("flows/a.yaml", "name: same\nsteps:\n  - id: a\n    action: mock\n")
        .file("flows/b.yaml", "name: same\nsteps:\n  - id: b\n    action: mock\n")
        .args(&["validate", "flows"])
        .status(1)
        .stdout(
            "error[duplicate-workflow]: the workflow name `same` is already used by flows/a.yaml
 --> flows/b.yaml:1:7
  |
1 | name: same
  |       ^^^^
  |
  = help: workflow names are unique across a directory; rename one of them
note: the name is first used here
 --> flows/a.yaml:1:7
  |
1 | name: same
  |       ^^^^

checked 2 files: 1 error, 0 warnings
",
        )
        .run();
}

#[test]
fn human_format_for_a_warning_and_a_clean_file() {
    Test::new()
        .file("w.yaml", "name: w\nsteps:\n  - id: wait\n    action: event.wait\n    with: { type: user.verified }\n")
        .args(&["validate", "w.yaml"])
        .stdout(
            "warning[wait-without-timeout]: step `wait` waits for an event with no timeout, so it may wait forever
 --> w.yaml:4:13
  |
4 |     action: event.wait
  |             ^^^^^^^^^^
  |
  = help: add a `timeout`, like `timeout: 48h`, and say what happens when it passes

checked 1 file: 0 errors, 1 warning
",
        )
        .run();
    Test::new()
        .file("ok.yaml", "name: ok\nsteps:\n  - id: a\n    action: mock\n")
        .args(&["validate", "ok.yaml"])
        .stdout("checked 1 file: no problems\n")
        .run();
}

#[test]
fn deny_warnings_turns_warnings_into_failure() {
    Test::new()
        .file("w.yaml", "name: w\nsteps:\n  - id: wait\n    action: event.wait\n    with: { type: user.verified }\n")
        .args(&["validate", "--deny-warnings", "--format", "json", "w.yaml"])
        .status(1)
        .run();
}

#[test]
fn json_format_follows_the_contract() {
    let report =
        Test::new().file("order.yaml", BROKEN).args(&["validate", "--format", "json", "order.yaml"]).status(1).json();
    assert_eq!(report["files"], 1);
    assert_eq!(report["errors"], 1);
    assert_eq!(report["warnings"], 0);
    let d = &report["diagnostics"][0];
    assert_eq!(d["file"], "order.yaml");
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(9), Some(13)));
    assert_eq!(d["severity"], "error");
    assert_eq!(d["code"], "unknown-step");
    assert!(d["message"].as_str().is_some_and(|m| m.contains("reserve")));
}

#[test]
fn github_format_prints_workflow_commands() {
    Test::new()
        .file("order.yaml", BROKEN)
        .args(&["validate", "--format", "github", "order.yaml"])
        .status(1)
        .stdout("::error file=order.yaml,line=9,col=13,title=unknown-step::[unknown-step] `needs` names `reserve`, but no step has that id (did you mean `reserve_stock`?)\n")
        .run();
}

#[test]
fn directories_are_searched_for_yaml_and_yml_but_not_test_files() {
    let report = Test::new()
        .file("flows/a.yaml", "name: a\nsteps:\n  - id: a\n    action: mock\n")
        .file("flows/deeper/b.yml", "name: b\nsteps:\n  - id: a\n    action: mock\n")
        .file("flows/a.test.yaml", "this is not a workflow: [")
        .file("flows/notes.txt", "not yaml")
        .file("flows/.hidden/c.yaml", "not: [a workflow")
        .args(&["validate", "--format", "json", "flows"])
        .json();
    assert_eq!(report["files"], 2, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
}

#[test]
fn bad_usage_exits_2() {
    Test::new().args(&["validate", "missing.yaml"]).status(2).run();
    Test::new().args(&["validate"]).status(2).run();
    Test::new().file("a.yaml", "name: a").args(&["validate", "--format", "xml", "a.yaml"]).status(2).run();
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["validate", "schema", "actions", "bench"] {
        Test::new().args(&[sub, "--help"]).stdout_contains("Usage: sagaflow").run();
    }
}

#[test]
fn actions_lists_the_registry_as_json() {
    let list = Test::new().args(&["actions", "--format", "json"]).json();
    let names: Vec<&str> = list.as_array().expect("list").iter().filter_map(|a| a["name"].as_str()).collect();
    for name in ["mock", "sleep", "event.wait", "event.emit"] {
        assert!(names.contains(&name), "{names:?}");
    }
    for a in list.as_array().expect("list") {
        for key in ["name", "description", "effect", "input_schema", "output_schema"] {
            assert!(!a[key].is_null(), "{a} lacks {key}");
        }
    }
}

#[test]
fn docs_actions_md_is_what_the_registry_says() {
    let committed = std::fs::read_to_string(crate::harness::repo().join("docs/actions.md")).expect("docs/actions.md");
    Test::new().args(&["actions", "--format", "markdown"]).stdout(&committed).run();
}

#[test]
fn docs_services_md_and_openapi_are_what_the_registry_says() {
    for (file, format) in [("docs/services.md", "services"), ("docs/services.openapi.json", "openapi")] {
        let committed = std::fs::read_to_string(crate::harness::repo().join(file)).expect(file);
        Test::new().args(&["actions", "--format", format]).stdout(&committed).run();
    }
}

#[test]
fn explain_lists_every_check_and_one_code_says_did_you_mean() {
    let output = Test::new().args(&["validate", "--explain", "cycle"]).run();
    let said = String::from_utf8_lossy(&output.stdout);
    assert_eq!(said, "cycle  error    steps need each other in a circle, so none can start\n");
    Test::new()
        .args(&["validate", "--explain", "cycel"])
        .stderr("error: there is no check `cycel`; did you mean `cycle`?\n")
        .status(2)
        .run();
}

#[test]
fn output_piped_into_a_reader_that_is_gone_ends_quietly() {
    for args in [&["validate", "--explain"][..], &["actions", "--format", "json"], &["schema"]] {
        let mut child = super::harness::sagaflow()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start");
        // The reader is gone before anything is written (as after `| head -c 0`).
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("end");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// DSL.md A1: `step` (the unit being undone) is in scope in `compensate` only,
/// and a misspelt field of it gets "did you mean".
#[test]
fn step_is_read_in_compensate_only_and_its_fields_are_checked() {
    let flow = "name: scope
steps:
  - id: charge
    action: mock
    with: { output: \"{{step.key}}\" }
    compensate:
      action: mock
      with: { output: \"{{step.kye}}\" }
      also_when_failed: true
";
    let out = Test::new().file("scope.yaml", flow).args(&["validate", "scope.yaml"]).status(1).run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error[unknown-template-root]: `step` is only in scope in `compensate`\n --> scope.yaml:5:24"),
        "{text}"
    );
    assert!(text.contains("error[unknown-field]: `step` has no field `kye`\n --> scope.yaml:8:26"), "{text}");
    assert!(text.contains("= help: did you mean `key`?"), "{text}");
}

/// A wait with no `timeout` of its own in a run that has one is bounded by the
/// run's deadline: no `wait-without-timeout` then.
#[test]
fn a_wait_in_a_run_with_a_timeout_is_not_warned_of_waiting_forever() {
    let bounded = "name: bounded\ntimeout: 3d\nsteps:\n  - id: click\n    action: event.wait\n    with: { type: user.clicked, key: u-1 }\n";
    let unbounded = bounded.replace("timeout: 3d\n", "").replace("name: bounded", "name: unbounded");
    Test::new()
        .file("bounded.yaml", bounded)
        .args(&["validate", "bounded.yaml"])
        .stdout("checked 1 file: no problems\n")
        .run();
    let out = Test::new().file("unbounded.yaml", &unbounded).args(&["validate", "unbounded.yaml"]).run();
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning[wait-without-timeout]"));
}

/// DSL.md A3: `run.status` is read in `finally` only, and a `finally` step
/// needs only other `finally` steps.
#[test]
fn finally_reads_run_status_and_needs_its_own_steps() {
    let flow = "name: f\nsteps:\n  - id: a\n    action: mock\n    with: { output: \"{{run.status}}\" }\nfinally:\n  - id: b\n    action: mock\n    needs: [a]\n  - id: c\n    action: mock\n    with: { output: \"{{run.status}} {{error.code}}\" }\n";
    let out = Test::new().file("f.yaml", flow).args(&["validate", "f.yaml"]).status(1).run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[unknown-field]: `run.status` is only known in `finally`\n --> f.yaml:5:24"), "{text}");
    assert!(text.contains("error[unknown-step]: `a` is not in `finally`"), "{text}");
    assert!(text.contains("checked 1 file: 2 errors, 0 warnings"), "{text}");
}

/// docs/language.md is the language for analysts: every example in it is a
/// whole workflow that validates with no problem.
#[test]
fn every_example_of_the_language_reference_validates_clean() {
    let text = std::fs::read_to_string(crate::harness::repo().join("docs/language.md")).expect("docs/language.md");
    let examples: Vec<&str> = text.split("```yaml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    assert!(examples.len() >= 8, "{} examples", examples.len());
    // In one folder, as a workflows directory: an example may run another (`workflow.run`).
    let mut folder = Test::new();
    for (i, example) in examples.iter().enumerate() {
        folder = folder.file(&format!("example{i}.yaml"), example);
    }
    let dir = folder.path_buf();
    for (i, example) in examples.iter().enumerate() {
        let name = format!("example{i}.yaml");
        let out = Test::in_dir(&dir).args(&["validate", &name]).run();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.ends_with("checked 1 file: no problems\n"), "example {i}:\n{example}\n{said}");
    }
}

/// A config's templates file adds to the shipped templates (it does not
/// replace them), its path is read from the config file's folder, and
/// `validate` checks `notify.send` template names against both.
#[test]
fn templates_of_the_config_add_to_the_shipped_ones_from_the_configs_folder() {
    let workflow = "name: w
steps:
  - id: shipped
    action: notify.send
    with: { to: usr-ada, template: order_confirmation, data: { order_id: o-1, total: 3 } }
  - id: own
    action: notify.send
    with: { to: usr-ada, template: custom_note, data: { text: hello } }
";
    let mail = "custom_note:\n  subject: A note\n  body: \"{{text}}\"\n";
    let config = "[notifications]\ntemplates = \"mail.yaml\"\n";
    let mut t = Test::new().file("w.yaml", workflow).file("conf/sagaflow.toml", config).file("conf/mail.yaml", mail);
    let dir = t.path_buf();
    let with_config = ["--config", "conf/sagaflow.toml"];
    let out = Test::in_dir(&dir).args(&with_config).args(&["validate", "w.yaml"]).run();
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("no problems\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let without = Test::in_dir(&dir).args(&["validate", "--format", "json", "w.yaml"]).status(1).json();
    assert_eq!(without["diagnostics"][0]["code"], "invalid-with", "{without}");
    assert_eq!(
        (without["diagnostics"][0]["line"].as_u64(), without["diagnostics"][0]["column"].as_u64()),
        (Some(8), Some(36))
    );
    let run = Test::in_dir(&dir).args(&with_config).args(&["run", "w.yaml", "--format", "json"]).run();
    let record: serde_json::Value = serde_json::from_slice(&run.stdout).expect("a record");
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["steps"][1]["output"]["subject"], "A note");
}
