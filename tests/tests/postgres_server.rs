//! The PostgreSQL fixture of the Postgres cluster tests (`processes::PostgresServer`): its own
//! cluster on a free port with the table of `@socket.io/postgres-adapter`, killed, stopped,
//! frozen and restarted on the same port with its data.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry_tests::processes::PostgresServer;

/// True when a connection to `port` is accepted.
async fn listens(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

#[tokio::test]
async fn postgres_server_has_the_adapters_table_and_survives_kill_stop_and_pause() {
    let mut pg = PostgresServer::start().await;
    let port = pg.port();
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    // The table as the adapter's README creates it: a bigserial id, a timestamp, the payload.
    assert_eq!(
        pg.query(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_name = 'socket_io_attachments' ORDER BY ordinal_position;"
        )
        .await,
        "id|bigint\ncreated_at|timestamp with time zone\npayload|bytea\n"
    );
    assert_eq!(
        pg.query("INSERT INTO socket_io_attachments (payload) VALUES ('\\x0102') RETURNING id;")
            .await,
        "1\n"
    );
    pg.notify("socket.io#/", "{\"it's\":\"quoted\"}").await;

    // Killed: nothing listens; restarted on the same port, the row is still there.
    pg.kill().await;
    assert!(!listens(port).await);
    pg.restart().await;
    assert_eq!(
        pg.query("SELECT encode(payload, 'hex') FROM socket_io_attachments;")
            .await,
        "0102\n"
    );

    // Stopped cleanly, the same.
    pg.stop().await;
    assert!(!listens(port).await);
    pg.restart().await;
    assert_eq!(
        pg.query("SELECT count(*) FROM socket_io_attachments;")
            .await,
        "1\n"
    );

    // Frozen: a connection is accepted by the kernel but nothing answers.
    pg.pause();
    let frozen = tokio::time::timeout(Duration::from_millis(500), pg.query("SELECT 1;")).await;
    assert!(frozen.is_err(), "a frozen server answered");
    pg.resume();
    assert_eq!(pg.query("SELECT 1;").await, "1\n");
    assert_eq!(pg.terminate_connections().await, 0);
}
