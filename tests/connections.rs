//! Connections on the gRPC port through the real server: the cap on open connections, and the
//! deadline for the HTTP/2 preface (a socket that connects and says nothing is closed; one
//! that sent its preface is not timed out afterwards). TLS handshakes are in `tests/tls.rs`.

mod common;

use std::time::{Duration, Instant};

use accessgrant::proto::v1::{self as pb, audit_service_client::AuditServiceClient};
use common::{closed_within, connect, spawn_server_with};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
const PING_PAYLOAD: [u8; 8] = *b"ag-ping!";

/// A PING frame (length 8, type 6) carrying [`PING_PAYLOAD`].
fn ping() -> Vec<u8> {
    let mut frame = vec![0, 0, 8, 6, 0, 0, 0, 0, 0];
    frame.extend_from_slice(&PING_PAYLOAD);
    frame
}

/// Reads frames until a PING ACK (type 6, flag 1) with [`PING_PAYLOAD`] arrives; false if
/// the connection closes first or nothing comes within 5 s.
async fn ping_acked(stream: &mut TcpStream) -> bool {
    let read = async {
        loop {
            let mut header = [0u8; 9];
            stream.read_exact(&mut header).await?;
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await?;
            if header[3] == 6 && header[4] & 1 == 1 && payload == PING_PAYLOAD {
                return Ok::<bool, std::io::Error>(true);
            }
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), read).await,
        Ok(Ok(true))
    )
}

async fn health_code(addr: std::net::SocketAddr) -> Code {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2));
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(_) => return Code::Unavailable,
    };
    match HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// A socket that sends nothing, or only part of the preface, is closed at the handshake
/// timeout, not before; one that sends its preface stays open past it and is served.
#[tokio::test]
async fn the_preface_must_arrive_within_the_handshake_timeout() {
    let timeout = Duration::from_millis(400);
    let s = spawn_server_with(|c| c.limits.handshake_timeout = timeout).await;

    let started = Instant::now();
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut partial = TcpStream::connect(s.addr).await.unwrap();
    partial.write_all(&PREFACE[..10]).await.unwrap();
    let mut client = TcpStream::connect(s.addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    client.write_all(&SETTINGS).await.unwrap();

    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(50),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    assert!(closed_within(&mut partial, Duration::from_secs(5)).await);

    // Well past the deadline, the connection that sent its preface still answers.
    tokio::time::sleep(timeout * 2).await;
    client.write_all(&ping()).await.unwrap();
    assert!(
        ping_acked(&mut client).await,
        "a connection that sent its preface was closed"
    );
}

/// A server with `max_connections` = `cap` and a handshake timeout long enough never to
/// matter, with account `acme` created through its own channel (which is therefore an
/// authenticated connection).
async fn capped_server(cap: usize) -> common::TestServer {
    let s = spawn_server_with(|c| {
        c.limits.max_connections = cap;
        c.limits.handshake_timeout = Duration::from_secs(30);
    })
    .await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s
}

/// A call whose request body never arrives: in flight (and authenticated) until the
/// deadline, so it keeps its connection busy.
fn stalled_call(
    channel: tonic::transport::Channel,
) -> tokio::task::JoinHandle<Result<tonic::Response<pb::GetAccessGrantResponse>, tonic::Status>> {
    tokio::spawn(async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        grpc.client_streaming::<_, pb::GetAccessGrantRequest, pb::GetAccessGrantResponse, _>(
            tonic::Request::new(futures::stream::pending::<pb::GetAccessGrantRequest>()),
            http::uri::PathAndQuery::from_static(
                "/accessgrant.v1.AccessGrantService/GetAccessGrant",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await
    })
}

/// With `max_connections` open and every one authenticated, one more is closed at once
/// (not at the handshake timeout), even when the authenticated ones are idle; the open ones
/// keep working, busy or not.
#[tokio::test]
async fn connections_beyond_the_cap_are_refused_when_all_are_authenticated() {
    let s = capped_server(3).await;
    // Three connections: the test server's own channel (idle after its call), one with a
    // call whose body never arrives, one following the audit log (a stream whose response
    // started long ago counts until it ends).
    let stalled_channel = connect(s.addr).await;
    let busy = stalled_call(stalled_channel.clone());
    let watching = connect(s.addr).await;
    let mut watch = AuditServiceClient::new(watching.clone())
        .watch_audit_events(pb::WatchAuditEventsRequest {
            account_id: "acme".into(),
            after_global_position: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        watch.message().await.unwrap().is_some(),
        "the stream has started"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let mut over = TcpStream::connect(s.addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed at once, not at the handshake timeout"
    );
    // Whatever the client library makes of a closed connection (UNAVAILABLE, CANCELLED),
    // the call is not served.
    assert_ne!(health_code(s.addr).await, Code::Ok);
    assert!(!busy.is_finished(), "a busy connection was closed");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), watch.message())
            .await
            .is_err(),
        "the watch stream is still open (no new events, no error)"
    );
    // The idle authenticated connection is still served.
    s.grant("acme").await;
    busy.abort();
}

/// At the limit, a new connection closes the oldest connection that never made an
/// authenticated call (a socket that says nothing, a health check), so such connections
/// only ever replace each other: a flood of them cannot lock out a probe, and cannot close
/// an authenticated client's idle connection.
#[tokio::test]
async fn at_the_cap_anonymous_connections_make_room() {
    // The server's own channel made an authenticated call and is idle; 29 raw sockets
    // connect after it and say nothing, filling the cap.
    let s = capped_server(30).await;
    let mut older = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut newer = Vec::new();
    for _ in 0..28 {
        newer.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(health_code(s.addr).await, Code::Ok, "the probe got a slot");
    assert!(
        closed_within(&mut older, Duration::from_secs(3)).await,
        "the oldest anonymous connection made room"
    );
    assert!(
        !closed_within(&mut newer[27], Duration::from_millis(200)).await,
        "only the oldest was closed"
    );
    drop(newer);

    // A flood of anonymous sockets, many more over time than the cap, each held open:
    // probes still get through, and the authenticated channel keeps working. (Each
    // anonymous socket lives about cap ÷ rate; the rate here keeps that far above a probe's
    // few milliseconds, as 1024 slots do against thousands of connections per second.)
    let stop = Instant::now() + Duration::from_secs(2);
    let addr = s.addr;
    let flood = tokio::spawn(async move {
        let mut held = Vec::new();
        while Instant::now() < stop {
            if let Ok(socket) = TcpStream::connect(addr).await {
                held.push(socket);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        held.len()
    });
    let mut probes_ok = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if health_code(s.addr).await == Code::Ok {
            probes_ok += 1;
        }
        // The authenticated channel keeps its connection: no reconnect, no failure.
        s.grant("acme").await;
    }
    let flooded = flood.await.unwrap();
    assert!(flooded > 60, "the flood opened only {flooded} sockets");
    assert!(probes_ok >= 4, "only {probes_ok} of 5 probes got through");
}

/// HTTP/2 frames of one complete `grpc.health.v1.Health/Check` call on `stream`: HEADERS
/// (HPACK, no dynamic table) and an empty message ending the stream.
fn health_check_frames(stream: u32) -> Vec<u8> {
    let path = b"/grpc.health.v1.Health/Check";
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    block.push(0x04); // :path, literal without indexing
    block.push(path.len() as u8);
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x01, 1, b'x']); // :authority x
    block.extend_from_slice(&[0x0f, 0x10, 16]); // content-type
    block.extend_from_slice(b"application/grpc");
    block.extend_from_slice(&[0x00, 2, b't', b'e', 8]);
    block.extend_from_slice(b"trailers");
    let mut out = Vec::new();
    for (kind, flags, payload) in [(1u8, 0x4u8, block), (0, 0x1, vec![0; 5])] {
        let len = payload.len() as u32;
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(&payload);
    }
    out
}

/// An anonymous connection that stopped reading (a tiny receive buffer, never read, while
/// it sends call after call and PINGs, so HTTP/2 has answers it cannot write and stops
/// reading it too) is still closed to make room: closing shuts the socket down rather than
/// waiting for the connection's next read.
#[tokio::test]
async fn a_connection_that_stopped_reading_still_makes_room() {
    let s = capped_server(2).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let flooder = socket.connect(s.addr).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend_from_slice(&SETTINGS);
    let mut next_stream = 1u32;
    let mut written = 0;
    let mut stuck_since: Option<Instant> = None;
    // Write until the server has stopped reading for half a second.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stuck_since.is_none_or(|t| t.elapsed() < Duration::from_millis(500)) {
        assert!(
            Instant::now() < deadline,
            "the server never stopped reading"
        );
        if written == out.len() {
            out = health_check_frames(next_stream);
            out.extend_from_slice(&ping());
            next_stream += 2;
            written = 0;
        }
        match flooder.try_write(&out[written..]) {
            Ok(n) => {
                written += n;
                stuck_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stuck_since.get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the flooder's connection failed early: {e}"),
        }
    }
    assert_eq!(
        health_code(s.addr).await,
        Code::Ok,
        "the stuck connection made room"
    );
    drop(flooder);
}

/// Shutdown does not wait for connections that never finished their handshake.
#[tokio::test]
async fn shutdown_closes_connections_still_handshaking() {
    let s = spawn_server_with(|c| c.limits.handshake_timeout = Duration::from_secs(30)).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.stop())
        .await
        .expect("the server stops without waiting for the handshake timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(closed_within(&mut silent, Duration::from_secs(1)).await);
}

/// `serve` raises its soft open-files limit to the hard one, so `max_connections` applies
/// rather than a low default soft limit (started here with a soft limit of 256).
#[tokio::test]
async fn serve_raises_the_soft_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_database_url(dir.path()).await;
    let bin = env!("CARGO_BIN_EXE_accessgrant");
    let child = tokio::process::Command::new("bash")
        .args(["-c", r#"ulimit -Sn 256 && exec "$0" "$@""#, bin])
        .args(common::serve_args(&url))
        .env_remove("ACCESSGRANT_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let limits = || -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let mut fields = line.split_whitespace().skip(3);
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    };
    // Until bash has exec'd the server, the limits are bash's (not yet lowered, or 256).
    let is_server = || {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.ends_with("accessgrant"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    loop {
        if is_server() {
            last = limits();
            if let Some((soft, hard)) = last
                && soft == hard
            {
                assert!(hard > 256, "this machine's hard limit is {hard}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "soft limit not raised to the hard one: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(child);
}
