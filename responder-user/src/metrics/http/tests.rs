use std::time::Instant;

use tokio::sync::oneshot;

use super::*;
use crate::metrics::tests::{key, names, FakeVips};
use crate::metrics::{Metrics, VipCounterSample};

/// Sends a raw request and returns the whole response, bounded in time.
async fn get(addr: SocketAddr, request: &str) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read response");
        String::from_utf8(response).expect("UTF-8 response")
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("response within 10 s")
}

/// A server on a free loopback port, stopped when the sender is dropped
/// or fired.
async fn start(
    server: HttpServer,
    routes: Routes,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let addr = server.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(routes, async {
        let _ = stopped.await;
    }));
    (addr, stop, serving)
}

async fn loopback() -> HttpServer {
    HttpServer::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
}

#[tokio::test]
async fn serves_metrics_health_and_readiness() {
    let metrics = Metrics::new();
    metrics.set_vip_counters(Arc::new(FakeVips {
        samples: vec![VipCounterSample {
            key: key("198.51.100.7", 2, 42, 0),
            conflicts: 1,
            ..VipCounterSample::default()
        }],
        names: names(&[(2, "eth0")]),
        ..FakeVips::default()
    }));
    let routes = Routes::metrics(&metrics).merge(Routes::probes(&metrics));
    let (addr, stop, serving) = start(loopback().await, routes).await;

    let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")),
        "{response}"
    );
    assert!(response.contains("Connection: close\r\n"), "{response}");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{response}"
    );
    assert!(
        body.contains(
            r#"responder_layer2_conflicts_total{ip="198.51.100.7",interface="eth0",vlan="42",service=""} 1"#
        ),
        "{body}"
    );

    let response = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
            && response.contains("Content-Type: text/plain; charset=utf-8\r\n")
            && response.ends_with("\r\n\r\nno heartbeat from the agent yet\n"),
        "{response}"
    );
    metrics.set_heartbeat();
    // hyper answers an HTTP/1.0 request in HTTP/1.0.
    let response = get(addr, "GET /healthz?verbose HTTP/1.0\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.0 200 OK\r\n") && response.ends_with("\r\n\r\nok\n"),
        "{response}"
    );

    let response = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
            && response.ends_with("\r\n\r\ninitial sync not done\n"),
        "{response}"
    );
    metrics.set_ready();
    let response = get(addr, "GET /readyz HTTP/1.1\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\nready\n"),
        "{response}"
    );

    let response = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    let response = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
            && response.contains("Allow: GET\r\n"),
        "{response}"
    );
    let oversized = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    let response = get(addr, &oversized).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    let response = get(addr, "NOT HTTP\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");

    stop.send(()).expect("server still running");
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("server stops within 10 s")
        .expect("server task");
}

#[tokio::test]
async fn each_listener_serves_only_its_routes() {
    let metrics = Metrics::new();
    let (probes, _stop_probes, _) = start(loopback().await, Routes::probes(&metrics)).await;
    let (scrapes, _stop_scrapes, _) = start(loopback().await, Routes::metrics(&metrics)).await;
    let response = get(probes, "GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    let response = get(probes, "GET /readyz HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 503 "), "{response}");
    let response = get(scrapes, "GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
    let response = get(scrapes, "GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
}

#[tokio::test]
async fn idle_connections_do_not_starve_the_listener() {
    const IDLE: usize = 100;
    let limits = ConnectionLimits {
        max_connections: 8,
        header_read_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    };
    let metrics = Metrics::new();
    let server = loopback().await.with_limits(limits);
    let (addr, _stop, _) = start(server, Routes::probes(&metrics)).await;

    // Held open, never sending a byte, until the end of the test.
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }

    // Excess connections are closed at once, the others once their headers
    // are late: a request gets through well within the bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answer = None;
    for _ in 0..1000 {
        if Instant::now() > deadline {
            break;
        }
        let attempt = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream
                .write_all(b"GET /readyz HTTP/1.1\r\n\r\n")
                .await
                .ok()?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.ok()?;
            Some(String::from_utf8_lossy(&response).into_owned())
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Some(response)) if !response.is_empty() => {
                answer = Some(response);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let answer = answer.expect("an answer within 30 s despite the idle connections");
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    // The idle ones were closed by the server: each reads an end of stream.
    for mut stream in idle {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("idle connection closed within 10 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "an idle connection got data: {read:?}"
        );
    }
}
