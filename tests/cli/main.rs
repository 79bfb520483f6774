//! Integration tests through the `sagaflow` binary: one test binary, with a
//! builder in the style of casey/just (`Test::new().file(..).args(..).stdout(..)`).

mod children;
mod cluster;
mod console;
mod console_operator;
mod contract;
mod corpus;
mod crash;
mod explore;
mod fuzz;
mod hardening;
mod harness;
mod inject;
mod operate;
mod outbox;
mod postgres;
mod retention;
mod run;
mod sandbox;
mod schema;
mod serve;
mod serve_live;
mod server;
mod store;
mod testing;
mod traces;
mod validate;
mod webdriver;
