//! Send one notification to iOS and Android devices with push on smol, reading feedback as it
//! arrives. It runs against push's loopback mock servers, so it works anywhere:
//! `cargo run -p push-smol --example broadcast`. For the real services, drop the mocks and
//! point `ApnsConfig` / `GcmConfig` at Apple's and Google's hosts with your credentials.

use futures_lite::StreamExt;
use push_mock::{Certificates, GatewayOptions, GcmOptions, MockGateway, MockGcm, TokenScript};
use push_smol::{ApnsConfig, Client, Device, GcmConfig, Payload, Tls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    // Loopback stand-ins for APNs and GCM, with their own CA and client certificate.
    let certs = Certificates::generate()?;
    let gateway = MockGateway::start(GatewayOptions::default(), &certs)?;
    let gcm = MockGcm::start(
        GcmOptions::new("my-server-key")
            .script("old-token", TokenScript::Canonical("new-token".into())),
    )?;

    smol::block_on(async {
        let tls = Tls::default()
            .add_ca_pem(certs.ca_pem.as_bytes())?
            .client_identity_pem(
                certs.client_cert_pem.as_bytes(),
                certs.client_key_pem.as_bytes(),
            )?;
        let client = Client::builder()
            .apns(ApnsConfig::new(&format!("localhost:{}", gateway.addr().port()))?.tls(tls))
            .gcm(GcmConfig::new("my-server-key").endpoint(&gcm.endpoint())?)
            .build()?;

        let mut session = client.send(
            Payload::new()
                .title("Hello")
                .body("A new product awaits you."),
        );
        // Take the feedback stream before pushing and read it concurrently.
        let mut feedbacks = session.feedbacks();
        let reader = smol::spawn(async move {
            while let Some(feedback) = feedbacks.next().await {
                println!("{feedback}");
            }
        });
        // Devices stream in one by one, e.g. from a database cursor.
        let rows = [
            ("ios", "5ab1".repeat(16)),
            ("ios", "not-a-token".to_string()),
            ("android", "old-token".to_string()),
            ("android", "APA91b-some-registration-id".to_string()),
        ];
        for (platform, token) in rows {
            session.push(Device::new(platform.parse()?, token)).await?;
        }
        let report = session.finish().await?;
        reader.await;
        println!(
            "{} delivered ({} with a new token), {} failed, in {:?}",
            report.delivered,
            report.new_tokens,
            report.failed_total(),
            report.elapsed
        );
        Ok(())
    })
}

#[test]
fn the_example_runs() {
    main().expect("the example runs against the mocks");
}
