//! `sagaflow outbox [--data DIR] [--format human|json]`: event deliveries still
//! pending (with their attempts and last error) and dead letters.

use std::process::ExitCode;

use super::{usage_error, RunFormat};

#[derive(clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    output: super::Output,
}

pub(super) fn run(args: Args, setup: &super::setup::Setup) -> ExitCode {
    let store = match setup.read(&args.data) {
        Ok(store) => store,
        Err(e) => return usage_error(&e),
    };
    let (pending, dead) = match store.pending().and_then(|p| Ok((p, store.dead_letters()?))) {
        Ok(both) => both,
        Err(e) => return usage_error(&e.message),
    };
    match args.output.format {
        RunFormat::Json => {
            println!("{}", serde_json::json!({ "pending": pending, "dead_letters": dead }));
        }
        RunFormat::Human => {
            println!("{} pending, {} dead letters", pending.iter().map(|d| d.pending.len()).sum::<usize>(), dead.len());
            for d in &pending {
                for p in &d.pending {
                    let error = p.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
                    let (event, kind, to) = (&d.event.id, &d.event.kind, &p.subscriber);
                    println!("pending  {kind}  {event} -> {to} ({} attempts){error}", p.attempts);
                }
            }
            for x in &dead {
                let (event, kind, to) = (&x.event.id, &x.event.kind, &x.subscriber);
                println!("dead     {kind}  {event} -> {to} ({} attempts): {}", x.attempts, x.error);
            }
        }
    }
    ExitCode::SUCCESS
}
