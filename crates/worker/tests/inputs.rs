//! Input files (images, key frames, GPTs files): `data:` URLs decoded, http(s) fetched
//! under the address rules and the size limit, failures answered as the request's fault.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::get;
use switchyard_worker::{InputRules, UpstreamError, fetch_bytes};

async fn server() -> String {
    let app = Router::new()
        .route("/img", get(|| async { vec![7u8; 10] }))
        .route("/big", get(|| async { vec![1u8; 5000] }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

fn refused(r: Result<Vec<u8>, UpstreamError>) -> String {
    match r {
        Err(UpstreamError::BadRequest { message, .. }) => message,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn inputs_follow_the_address_rules_and_the_size_limit() {
    let base = server().await;
    let http = reqwest::Client::new();
    let open = InputRules {
        allow_private: true,
        max_bytes: 1000,
    };
    let closed = InputRules {
        allow_private: false,
        ..open
    };
    assert_eq!(
        fetch_bytes(&http, &format!("{base}/img"), "the image", open)
            .await
            .unwrap(),
        vec![7u8; 10]
    );
    // A client's URL must not reach this machine or the operator's network.
    let port = base.rsplit(':').next().unwrap();
    for url in [
        format!("{base}/img"),
        format!("http://localhost:{port}/img"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/x.png".to_string(),
    ] {
        let m = refused(fetch_bytes(&http, &url, "the image", closed).await);
        assert!(m.starts_with("could not fetch the image"), "{m}");
        assert!(m.contains("private") || m.contains("localhost"), "{m}");
    }
    // Larger than the limit.
    let m = refused(fetch_bytes(&http, &format!("{base}/big"), "the image", open).await);
    assert!(m.contains("larger than 1000 bytes"), "{m}");
    // Not found upstream.
    let m = refused(fetch_bytes(&http, &format!("{base}/none"), "the image", open).await);
    assert!(m.contains("HTTP 404"), "{m}");
    // data: URLs are decoded, whatever the address rules.
    assert_eq!(
        fetch_bytes(&http, "data:image/png;base64,AQID", "the image", closed)
            .await
            .unwrap(),
        vec![1, 2, 3]
    );
    let m = refused(fetch_bytes(&http, "data:image/png;base64,%%%", "the image", closed).await);
    assert!(m.contains("base64"), "{m}");
}
