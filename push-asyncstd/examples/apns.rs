//! push on async-std: the same API as push-smol, only the import differs. Runs against the
//! loopback mock gateway: `cargo run -p push-asyncstd --example apns`.
//!
//! async-std is discontinued upstream; prefer push-smol for new code.

use futures_lite::StreamExt;
use push_asyncstd::{ApnsConfig, Client, Device, Payload, Tls};
use push_mock::{Certificates, GatewayOptions, MockGateway};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let certs = Certificates::generate()?;
    let bad = push_asyncstd::push_proto::ApnsToken::parse(&"0b".repeat(32))?;
    let options = GatewayOptions {
        bad_tokens: [bad].into(),
        ..GatewayOptions::default()
    };
    let gateway = MockGateway::start(options, &certs)?;

    async_std::task::block_on(async {
        let tls = Tls::default()
            .add_ca_pem(certs.ca_pem.as_bytes())?
            .client_identity_pem(
                certs.client_cert_pem.as_bytes(),
                certs.client_key_pem.as_bytes(),
            )?;
        let client = Client::builder()
            .apns(ApnsConfig::new(&format!("localhost:{}", gateway.addr().port()))?.tls(tls))
            .build()?;
        let mut session = client.send(
            Payload::new()
                .title("Hello")
                .body("From async-std")
                .badge(1),
        );
        let mut feedbacks = session.feedbacks();
        let reader = async_std::task::spawn(async move {
            let mut invalid = Vec::new();
            while let Some(feedback) = feedbacks.next().await {
                if feedback
                    .error
                    .as_ref()
                    .is_some_and(|e| e.is_invalid_device())
                {
                    invalid.push(feedback.device.token);
                }
            }
            invalid
        });
        for n in 0..100u8 {
            session
                .push(Device::ios(format!("{n:02x}").repeat(32)))
                .await?;
        }
        let report = session.finish().await?;
        let invalid = reader.await;
        println!(
            "{} delivered; remove these tokens: {invalid:?}",
            report.delivered
        );
        Ok(())
    })
}

#[test]
fn the_example_runs() {
    main().expect("the example runs against the mock gateway");
}
