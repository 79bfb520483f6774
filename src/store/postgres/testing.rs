//! A database of its own for each test that needs PostgreSQL, in the cluster
//! `SAGAFLOW_TEST_PG` names (`.ci/pg-start` starts one). Without it a test
//! says so and does nothing, except under `CI=true`, where it fails: a skipped
//! test must never pass for a tested one.

/// A URL to a new, empty database; none when no server is given (outside CI).
pub(crate) fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("SAGAFLOW_TEST_PG") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "SAGAFLOW_TEST_PG is not set: under CI the PostgreSQL tests must run (`source .ci/pg-start`)"
        );
        eprintln!("SAGAFLOW_TEST_PG is not set: this PostgreSQL test does nothing (`source .ci/pg-start` to run it)");
        return None;
    };
    let name = format!("t_{:016x}", fastrand::u64(..));
    // On a thread of its own: the caller may be inside a runtime already.
    let (at, named) = (admin.clone(), name.clone());
    let created = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&at, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot reach SAGAFLOW_TEST_PG ({at}): {e}"));
            let running = tokio::spawn(connection);
            client.batch_execute(&format!("CREATE DATABASE {named}")).await.expect("create a test database");
            drop(client);
            let _ = running.await;
        })
    });
    created.join().expect("the test database was made");
    let mut url = reqwest::Url::parse(&admin).expect("SAGAFLOW_TEST_PG is a URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}
