//! Send one notification to iOS and Android devices with push on smol, reading feedback as it
//! arrives: iOS over the APNs HTTP/2 provider API with a provider token, Android over FCM HTTP
//! v1 as a service account. It runs against push's loopback mock servers, so it works
//! anywhere: `cargo run -p push-smol --example broadcast`. For the real services, drop the
//! mocks, the URLs and the extra CA, and use your `.p8` key and service-account file.

use futures_lite::StreamExt;
use push_mock::fcm::demo_service_account;
use push_mock::{
    Certificates, FcmOptions, FcmScript, Http2Auth, Http2Options, MockApnsHttp2, MockFcm,
    ReasonScript,
};
use push_smol::{ApnsHttp2Config, Client, Device, FcmConfig, HttpConfig, Payload, Tls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const KEY_ID: &str = "ABC123DEFG";
const TEAM_ID: &str = "TEAM123456";
const BAD_IOS_TOKEN: &str = "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de";

fn main() -> Result<(), BoxError> {
    // Loopback stand-ins for APNs and FCM, with their own CA; a fresh `.p8` provider key
    // whose public half the APNs mock checks every JWT with; FCM's mock holds the test-only
    // service account's public key and runs its OAuth2 token endpoint.
    let certs = Certificates::generate()?;
    let p8 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?.serialize_pem();
    let apns = MockApnsHttp2::start(
        Http2Options::new(Http2Auth::token_from_pem(KEY_ID, TEAM_ID, &p8)?)
            .topic("com.example.app")
            .script(
                BAD_IOS_TOKEN,
                ReasonScript::Unregistered { timestamp_ms: 1 },
            ),
        &certs,
    )?;
    let fcm = MockFcm::start(
        FcmOptions::demo("my-project")?.script("old-token", FcmScript::Unregistered),
        &certs,
    )?;
    let service_account = demo_service_account("my-project", &fcm.token_url());

    smol::block_on(async {
        let tls = Tls::default().add_ca_pem(certs.ca_pem.as_bytes())?;
        let client = Client::builder()
            .apns_http2(
                ApnsHttp2Config::new(&apns.url())?
                    .topic("com.example.app")
                    .provider_key_pem(&p8, KEY_ID, TEAM_ID)?
                    .tls(tls.clone()),
            )
            .fcm(
                FcmConfig::from_service_account_json(&service_account)?
                    .url(&fcm.url())?
                    .tls(tls),
            )
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
                println!("{feedback}"); // delete the tokens reported invalid_device
            }
        });
        // Devices stream in one by one, e.g. from a database cursor.
        let rows = [
            ("ios", "5ab1".repeat(16)),
            ("ios", BAD_IOS_TOKEN.to_string()),
            ("ios", "not-a-token".to_string()),
            ("android", "old-token".to_string()),
            ("android", "fcm-registration-token-1".to_string()),
        ];
        for (platform, token) in rows {
            session.push(Device::new(platform.parse()?, token)).await?;
        }
        let report = session.finish().await?;
        reader.await;
        println!(
            "{} delivered, {} failed ({} invalid_device), in {:?}",
            report.delivered,
            report.failed_total(),
            report.failed_with("invalid_device"),
            report.elapsed
        );
        assert_eq!((report.delivered, report.failed_total()), (2, 3));
        Ok(())
    })
}

#[test]
fn the_example_runs() {
    main().expect("the example runs against the mocks");
}
