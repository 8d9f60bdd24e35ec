//! TLS to PostgreSQL (issue 10): the database URL's `sslmode` and `sslrootcert` read as libpq reads them, and a
//! rustls connector (`tokio-postgres-rustls`, the ring provider the rest of punchd uses) for every connection of
//! the pool and of the live-event relay ([`super::notify`]).
//!
//! | `sslmode`              | What punchd does                                                                    |
//! |------------------------|-------------------------------------------------------------------------------------|
//! | `disable`              | plain TCP, never TLS                                                                |
//! | `prefer` (the default) | asks for TLS; a server that has none is spoken to in plain TCP; the certificate is not checked. Unlike libpq, a TLS handshake that fails is an error, not retried in plain TCP |
//! | `require`              | TLS or no connection; the certificate is not checked — unless a CA is given (`sslrootcert`, or `~/.postgresql/root.crt` exists), then as `verify-ca`, like libpq |
//! | `verify-ca`            | TLS; the server's certificate must chain to the CA; its name is not compared        |
//! | `verify-full`          | TLS; the certificate must chain to the CA and name the host of the URL              |
//!
//! `sslrootcert=/path/ca.pem` names the CA file (PEM, one or more certificates); without it the verifying modes
//! use `~/.postgresql/root.crt` as libpq does, and fail to start when that is missing. `sslrootcert=system` uses
//! the Mozilla root list built into punchd (`webpki-roots`; libpq uses the operating system's store). Client
//! certificates (`sslcert`, `sslkey`) are not supported and refused. Depends on nothing else of punchd.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked, from `sslmode` (see the module doc's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// `sslmode=disable`: never TLS.
    Disable,
    /// `sslmode=prefer` (or no `sslmode`): TLS when the server offers it, certificate not checked.
    Prefer,
    /// `sslmode=require` without a CA: TLS always, certificate not checked.
    Require,
    /// `sslmode=verify-ca`, or `require` with a CA: the chain is checked against the CA, not the name.
    VerifyCa(RootCa),
    /// `sslmode=verify-full`: the chain and the host name are checked.
    VerifyFull(RootCa),
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCa {
    /// A PEM file (`sslrootcert=<path>`, or libpq's default `~/.postgresql/root.crt`).
    File(PathBuf),
    /// `sslrootcert=system`: the Mozilla list of `webpki-roots`.
    System,
}

/// A database URL read: the driver's settings (with `sslmode` mapped to what the driver knows) and the TLS mode.
#[derive(Debug, Clone)]
pub struct ParsedUrl {
    /// The driver's settings.
    pub config: tokio_postgres::Config,
    /// How TLS is used.
    pub tls: TlsMode,
}

/// libpq's default CA file, `~/.postgresql/root.crt`, when `HOME` is set.
fn default_root_crt() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".postgresql/root.crt"))
}

/// Read a `postgres://` URL: `sslmode` (`disable`, `allow` read as `prefer`, `prefer`, `require`, `verify-ca`,
/// `verify-full`) and `sslrootcert` are taken out and mapped as the module doc says; the rest goes to the
/// driver. `default_ca` is libpq's default CA file (`~/.postgresql/root.crt`), used when `sslrootcert` is not
/// given and the file exists.
///
/// Errors (a message without the password): an unknown `sslmode`, `sslcert`/`sslkey` given, a verifying mode
/// without any CA, or the driver refusing the rest of the URL.
pub fn parse_url_with(url: &str, default_ca: Option<&Path>) -> Result<ParsedUrl, String> {
    let redacted = super::redact_url(url);
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut sslmode: Option<String> = None;
    let mut rootcert: Option<String> = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        match key {
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => rootcert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "database URL {redacted}: {key} (client certificates) is not supported; \
                     use a password, or a local proxy that holds the certificate"
                ))
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| format!("reading database URL {redacted}: {e}"))?;
    let ca = || -> Option<RootCa> {
        match rootcert.as_deref() {
            Some("system") => Some(RootCa::System),
            Some(path) if !path.is_empty() => Some(RootCa::File(PathBuf::from(path))),
            _ => default_ca
                .filter(|p| p.exists())
                .map(|p| RootCa::File(p.to_owned())),
        }
    };
    let need_ca = |mode: &str| {
        ca().ok_or_else(|| {
            format!(
                "database URL {redacted}: sslmode={mode} needs the CA that signed the server's certificate: \
                 add sslrootcert=/path/to/ca.pem (or sslrootcert=system for the public CAs)"
            )
        })
    };
    let tls = match sslmode.as_deref().unwrap_or("prefer") {
        "disable" => TlsMode::Disable,
        "allow" | "prefer" => TlsMode::Prefer,
        "require" => match ca() {
            Some(ca) => TlsMode::VerifyCa(ca),
            None => TlsMode::Require,
        },
        "verify-ca" => TlsMode::VerifyCa(need_ca("verify-ca")?),
        "verify-full" => TlsMode::VerifyFull(need_ca("verify-full")?),
        other => {
            return Err(format!(
                "database URL {redacted}: sslmode={other} is not one of disable, allow, prefer, require, \
                 verify-ca, verify-full"
            ))
        }
    };
    config.ssl_mode(match tls {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    Ok(ParsedUrl { config, tls })
}

/// [`parse_url_with`] with libpq's default CA file `~/.postgresql/root.crt`.
///
/// Errors: as [`parse_url_with`].
pub fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    parse_url_with(url, default_root_crt().as_deref())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &RootCa) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match ca {
        RootCa::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        RootCa::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("reading the CA file {}: {e}", path.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "the CA file {} holds no usable certificate",
                    path.display()
                ));
            }
        }
    }
    Ok(store)
}

/// The rustls connector for `mode`.
///
/// Errors: the CA file cannot be read or holds no certificate.
pub fn connector(mode: &TlsMode) -> Result<MakeRustlsConnect, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?;
    let config = match mode {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(provider())))
            .with_no_client_auth(),
        TlsMode::VerifyFull(ca) => builder
            .with_root_certificates(roots(ca)?)
            .with_no_client_auth(),
        TlsMode::VerifyCa(ca) => {
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| format!("TLS settings: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `require`/`prefer` without a CA: the certificate is not checked (encryption only, as libpq); the handshake
/// signatures still are.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the full check, except that a certificate naming another host is accepted.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "postgres://punchd:secret@db.example.com:5433/att";

    fn parse(query: &str, default_ca: Option<&Path>) -> Result<ParsedUrl, String> {
        parse_url_with(&format!("{BASE}{query}"), default_ca)
    }

    #[test]
    fn sslmode_maps_as_libpq_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not read while parsing").expect("write");
        let ca_url = percent_encoding::utf8_percent_encode(
            &ca.display().to_string(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let cases: [(String, TlsMode, SslMode); 8] = [
            (String::new(), TlsMode::Prefer, SslMode::Prefer),
            (
                "?sslmode=disable".into(),
                TlsMode::Disable,
                SslMode::Disable,
            ),
            ("?sslmode=allow".into(), TlsMode::Prefer, SslMode::Prefer),
            (
                "?sslmode=require".into(),
                TlsMode::Require,
                SslMode::Require,
            ),
            (
                format!("?sslmode=require&sslrootcert={ca_url}"),
                TlsMode::VerifyCa(RootCa::File(ca.clone())),
                SslMode::Require,
            ),
            (
                format!("?sslrootcert={ca_url}&sslmode=verify-ca&application_name=x"),
                TlsMode::VerifyCa(RootCa::File(ca.clone())),
                SslMode::Require,
            ),
            (
                "?sslmode=verify-full&sslrootcert=system".into(),
                TlsMode::VerifyFull(RootCa::System),
                SslMode::Require,
            ),
            (
                "?options=-csearch_path%3Dx&sslmode=verify-full&sslrootcert=system".into(),
                TlsMode::VerifyFull(RootCa::System),
                SslMode::Require,
            ),
        ];
        for (query, tls, ssl) in cases {
            let parsed = parse(&query, None).unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(parsed.tls, tls, "{query}");
            assert_eq!(parsed.config.get_ssl_mode(), ssl, "{query}");
            assert_eq!(parsed.config.get_dbname(), Some("att"), "{query}");
            assert_eq!(parsed.config.get_ports(), &[5433], "{query}");
        }
        // The rest of the query still reaches the driver.
        let parsed = parse("?sslmode=require&application_name=x", None).expect("parse");
        assert_eq!(parsed.config.get_application_name(), Some("x"));
        // libpq's default CA file counts when it exists: require becomes verify-ca, verify-full uses it.
        let parsed = parse("?sslmode=require", Some(&ca)).expect("parse");
        assert_eq!(parsed.tls, TlsMode::VerifyCa(RootCa::File(ca.clone())));
        let parsed = parse("?sslmode=verify-full", Some(&ca)).expect("parse");
        assert_eq!(parsed.tls, TlsMode::VerifyFull(RootCa::File(ca.clone())));
        let missing = dir.path().join("none.crt");
        let parsed = parse("?sslmode=require", Some(&missing)).expect("parse");
        assert_eq!(parsed.tls, TlsMode::Require);
    }

    #[test]
    fn impossible_settings_are_refused_without_the_password() {
        for (query, needle) in [
            ("?sslmode=verify-full", "needs the CA"),
            ("?sslmode=verify-ca", "needs the CA"),
            ("?sslmode=sometimes", "is not one of"),
            ("?sslcert=/c.pem&sslkey=/k.pem", "not supported"),
        ] {
            let e = match parse(query, None) {
                Ok(p) => panic!("{query}: accepted as {:?}", p.tls),
                Err(e) => e,
            };
            assert!(e.contains(needle), "{query}: {e}");
            assert!(!e.contains("secret"), "{query}: {e}");
        }
    }

    /// Whether a connection made with `url` uses TLS (`pg_stat_ssl` of its own backend).
    async fn tls_in_use(url: &str) -> Result<bool, String> {
        let parsed = parse_url_with(url, None)?;
        let (client, connection) = super::super::connect_one(&parsed)
            .await
            .map_err(|e| e.to_string())?;
        let task = tokio::spawn(connection);
        let ssl: bool = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        drop(client);
        let _ = task.await;
        Ok(ssl)
    }

    /// The modes against the test server, when it speaks TLS with Debian's self-signed certificate for
    /// `localhost` (`ssl = on`, `ssl_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem`, Debian's default);
    /// otherwise only `disable` is checked and the rest says SKIPPED.
    #[tokio::test]
    async fn every_mode_against_the_test_server() {
        let base = match std::env::var("PUNCHD_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                println!("SKIPPED: PUNCHD_TEST_POSTGRES_URL is not set");
                return;
            }
        };
        let with = |query: &str| {
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}{query}")
        };
        assert_eq!(tls_in_use(&with("sslmode=disable")).await, Ok(false));
        let parsed = parse_url_with(&with("sslmode=disable"), None).expect("url");
        let (client, connection) = super::super::connect_one(&parsed).await.expect("connect");
        let task = tokio::spawn(connection);
        let settings: Vec<String> = client
            .query(
                "SELECT setting FROM pg_settings WHERE name IN ('ssl', 'ssl_cert_file') ORDER BY name",
                &[],
            )
            .await
            .expect("settings")
            .iter()
            .map(|r| r.get(0))
            .collect();
        drop(client);
        let _ = task.await;
        let cert = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        if settings != ["on", cert] || !Path::new(cert).exists() || !base.contains("@127.0.0.1") {
            println!("SKIPPED: the test server's TLS is not Debian's default ({settings:?})");
            return;
        }
        let ca = format!("sslrootcert={cert}");
        for (query, expected) in [
            ("sslmode=prefer".to_owned(), true),
            ("sslmode=require".to_owned(), true),
            (format!("sslmode=verify-ca&{ca}"), true),
        ] {
            assert_eq!(tls_in_use(&with(&query)).await, Ok(expected), "{query}");
        }
        // The certificate names localhost, not 127.0.0.1: verify-full refuses the address, accepts the name.
        let e = tls_in_use(&with(&format!("sslmode=verify-full&{ca}")))
            .await
            .expect_err("127.0.0.1 is not the certificate's name");
        // The cause is named, not only "error performing TLS handshake".
        assert!(e.contains("TLS handshake"), "{e}");
        assert!(e.contains("not valid for name"), "{e}");
        let by_name =
            with(&format!("sslmode=verify-full&{ca}")).replace("@127.0.0.1", "@localhost");
        assert_eq!(tls_in_use(&by_name).await, Ok(true), "{by_name}");
        // A self-signed certificate is nobody's public CA.
        let e = tls_in_use(&with("sslmode=verify-full&sslrootcert=system"))
            .await
            .expect_err("not a public CA");
        assert!(e.contains("TLS handshake"), "{e}");
        assert!(e.contains("invalid peer certificate"), "{e}");
    }

    #[test]
    fn connectors_are_built_for_every_mode_and_a_bad_ca_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        for mode in [
            TlsMode::Disable,
            TlsMode::Prefer,
            TlsMode::Require,
            TlsMode::VerifyFull(RootCa::System),
            TlsMode::VerifyCa(RootCa::System),
        ] {
            assert!(connector(&mode).is_ok(), "{mode:?}");
        }
        let e = connector(&TlsMode::VerifyFull(RootCa::File(empty)))
            .err()
            .expect("an empty CA file is refused");
        assert!(e.contains("no usable certificate"), "{e}");
        let e = connector(&TlsMode::VerifyCa(RootCa::File(
            dir.path().join("gone.pem"),
        )))
        .err()
        .expect("a missing CA file is refused");
        assert!(e.contains("reading the CA file"), "{e}");
    }
}
