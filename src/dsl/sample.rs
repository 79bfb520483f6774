//! Generated workflow files: the benchmark's, and the YAML tests' corpus.

use std::fmt::Write as _;

/// A valid workflow of `steps` steps with templates, needs, retries and compensations.
pub(crate) fn workflow(i: usize, steps: usize) -> String {
    let mut y = format!(
        "name: bench_{i}\ndescription: Generated for the validation benchmark.\ninput:\n  type: object\n  required: [order_id]\n  properties:\n    order_id: {{type: string}}\n    total: {{type: number}}\ntimeout: 1h\ndefaults:\n  retry: {{max_attempts: 3, backoff: exponential, delay: 100ms}}\n  timeout: 5s\nsteps:\n"
    );
    for j in 0..steps {
        let _ = write!(y, "  - id: step_{j}\n    action: mock\n    with:\n      output:\n        id: \"s{j}-{{{{input.order_id}}}}\"\n        amount: {j}\n");
        if j > 0 {
            let _ = writeln!(y, "        note: \"after {{{{steps.step_{}.output.id}}}} for {{{{run.id}}}}\"", j - 1);
        }
        if j >= 2 && j % 3 == 0 {
            let _ = writeln!(y, "    needs: [step_{}, step_{}]", j - 2, j - 1);
        }
        let _ = write!(
            y,
            "    retry: {{max_attempts: 4, delay: 50ms, max_delay: 1s, on: [unavailable, timeout]}}\n    timeout: 2s\n    compensate:\n      action: mock\n      with: {{output: \"undo {{{{steps.step_{j}.output.id}}}} because {{{{error.message}}}}\"}}\n"
        );
    }
    y.push_str("output:\n  last: \"{{steps.step_0.output.id}}\"\n");
    y
}

/// A valid workflow of `steps` steps, each needing the one before.
pub(crate) fn chain(steps: usize) -> String {
    let mut y = String::from("name: chain\nsteps:\n  - {id: s0, action: mock}\n");
    for j in 1..steps {
        let _ = writeln!(y, "  - {{id: s{j}, action: mock, needs: [s{}]}}", j - 1);
    }
    y
}
