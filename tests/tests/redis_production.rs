//! A Redis as production runs it, for every protocol of the Redis adapter: TLS (`rediss://`)
//! with a certificate of a private CA, an ACL user with a password, a database other than 0.
//! Two Belfry servers, raw WebSocket clients, real `redis-server`s.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use belfry::SocketIo;
use belfry_redis::{Protocol, RedisAdapter, RedisAdapterBuilder, SubscriptionMode};
use belfry_tests::{
    RawWs,
    cluster::{next_event, room_server},
    processes::RedisServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROTOCOLS: [Protocol; 3] = [
    Protocol::Classic,
    Protocol::Sharded(SubscriptionMode::Dynamic),
    Protocol::Streams,
];

/// A Belfry server whose sockets join "r", over the adapter `builder` makes, and a client.
async fn server(builder: RedisAdapterBuilder) -> (SocketIo, RawWs) {
    let redis = builder.connect().await.unwrap();
    let builder = SocketIo::builder().adapter(redis.factory());
    let (io, client, _) = room_server(builder, async move { redis.ready().await }).await;
    (io, client)
}

/// Two servers over `builder`: a broadcast from each reaches both clients once, and each
/// server finds the other's socket.
async fn cluster_works(builder: impl Fn() -> RedisAdapterBuilder, what: &str) {
    let (a, mut a_client) = server(builder()).await;
    let (b, mut b_client) = server(builder()).await;
    // The sharded protocol subscribes the room's channel in the background.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (from, text) in [(&a, "from-a"), (&b, "from-b")] {
        from.to("r").emit("news", text).unwrap();
        let expected = format!(r#"42["news","{text}"]"#);
        for client in [&mut a_client, &mut b_client] {
            assert_eq!(
                next_event(client, Duration::from_secs(5)).await.as_deref(),
                Some(expected.as_str()),
                "{what}"
            );
            assert_eq!(
                next_event(client, Duration::from_millis(200)).await,
                None,
                "{what}"
            );
        }
    }
    let all = a.of("/").unwrap().fetch_sockets().await.unwrap();
    assert_eq!(all.len(), 2, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let redis = RedisServer::start_tls().await;
    assert!(redis.url().starts_with("rediss://"));
    for protocol in PROTOCOLS {
        let builder = || {
            RedisAdapter::builder(redis.url())
                .protocol(protocol)
                .root_certificates(redis.ca_pem())
        };
        cluster_works(builder, &format!("{protocol:?}")).await;
    }
    // The system's roots do not know the private CA: the certificate is refused.
    let refused = RedisAdapter::builder(redis.url()).connect().await;
    assert!(refused.is_err());
}

/// `AUTH app secret`, `SELECT db`, then `command` (its words): the raw reply.
async fn raw_command(port: u16, db: u8, command: &[&str]) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut out = String::new();
    for words in [
        &["AUTH", "app", "secret"][..],
        &["SELECT", &db.to_string()][..],
        command,
    ] {
        out.push_str(&format!("*{}\r\n", words.len()));
        for word in words {
            out.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
    }
    stream.write_all(out.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n") || reply.iter().filter(|b| **b == b'\n').count() < 3 {
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "{reply:?}");
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(reply).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_with_a_password_and_a_database() {
    let redis = RedisServer::start_with_args(&[
        "--user", "app", "on", ">secret", "~*", "&*", "+@all", "--user", "default", "off",
    ])
    .await;
    let url = format!("redis://app:secret@127.0.0.1:{}/3", redis.port());
    for protocol in PROTOCOLS {
        let builder = || RedisAdapter::builder(url.as_str()).protocol(protocol);
        cluster_works(builder, &format!("{protocol:?}")).await;
    }
    // The streams protocol's stream is in database 3, not 0.
    let in_3 = raw_command(redis.port(), 3, &["EXISTS", "socket.io"]).await;
    let in_0 = raw_command(redis.port(), 0, &["EXISTS", "socket.io"]).await;
    assert!(in_3.ends_with(":1\r\n"), "{in_3:?}");
    assert!(in_0.ends_with(":0\r\n"), "{in_0:?}");
    // A wrong password is refused when connecting.
    let wrong = format!("redis://app:wrong@127.0.0.1:{}/3", redis.port());
    assert!(RedisAdapter::builder(wrong).connect().await.is_err());
}
