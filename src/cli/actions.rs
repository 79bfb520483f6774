//! `sagaflow actions [--format human|json]`

use std::process::ExitCode;

use serde_json::json;

use super::Format;
use crate::actions::Registry;

#[derive(clap::Args)]
pub struct Args {
    /// How to print the list.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

pub fn run(args: Args) -> ExitCode {
    let registry = Registry::builtin();
    match args.format {
        Format::Json | Format::Github => {
            let list: Vec<_> = registry
                .specs()
                .map(|s| {
                    json!({
                        "name": s.name,
                        "description": s.description,
                        "effect": s.effect.as_str(),
                        "input_schema": s.input_schema,
                        "output_schema": s.output_schema,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
        }
        Format::Human => {
            let width = registry.names().map(str::len).max().unwrap_or(0);
            for s in registry.specs() {
                println!("{:width$}  {:12}  {}", s.name, s.effect.as_str(), s.description);
            }
        }
    }
    ExitCode::SUCCESS
}
