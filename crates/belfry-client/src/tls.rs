//! The connections of the client: TCP, and TLS over it for `https://` and `wss://` URLs (with
//! the `tls` feature: rustls, trusting the system's root certificates or those given to the
//! builder).

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection to the server, TLS or not.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How to open connections: plain TCP, or TLS to `host`.
#[derive(Clone)]
pub(crate) enum Security {
    Plain,
    #[cfg(feature = "tls")]
    Tls {
        config: std::sync::Arc<rustls::ClientConfig>,
        host: rustls::pki_types::ServerName<'static>,
    },
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Plain => f.write_str("Plain"),
            #[cfg(feature = "tls")]
            Security::Tls { host, .. } => f.debug_struct("Tls").field("host", host).finish(),
        }
    }
}

impl Security {
    /// TLS to `host`, trusting `roots` (PEM certificates), or the system's root certificates.
    ///
    /// # Errors
    ///
    /// Without the `tls` feature; certificates that are not PEM; no root to trust; a host
    /// that is not a DNS name or an IP address.
    pub(crate) fn tls(host: &str, roots: Option<&[u8]>) -> Result<Security, String> {
        #[cfg(feature = "tls")]
        {
            let host = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|_| format!("{host} is not a valid server name"))?;
            Ok(Security::Tls {
                config: std::sync::Arc::new(config(roots)?),
                host,
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (host, roots);
            Err("https:// and wss:// need the `tls` feature of belfry-client".to_owned())
        }
    }

    /// True for TLS.
    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, Security::Plain)
    }

    /// Opens a connection to `authority` (`host:port`).
    pub(crate) async fn connect(&self, authority: &str) -> io::Result<Box<dyn Io>> {
        let tcp = tokio::net::TcpStream::connect(authority).await?;
        tcp.set_nodelay(true)?;
        match self {
            Security::Plain => Ok(Box::new(tcp)),
            #[cfg(feature = "tls")]
            Security::Tls { config, host } => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(host.clone(), tcp)
                    .await?;
                Ok(Box::new(tls))
            }
        }
    }
}

/// The TLS configuration trusting `roots`, or the system's root certificates.
#[cfg(feature = "tls")]
fn config(roots: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|_| "the root certificates are not PEM".to_owned())?;
                store
                    .add(cert)
                    .map_err(|_| "a root certificate is invalid".to_owned())?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    if store.is_empty() {
        return Err("no root certificate to trust".to_owned());
    }
    // The process's default crypto provider when the application installed one, ring
    // otherwise: this never panics for want of a default.
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| {
            #[allow(deprecated)] // ring is this crate's provider; its defaults are kept
            std::sync::Arc::new(rustls::crypto::ring::default_provider())
        });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| "no TLS version in common".to_owned())?
        .with_root_certificates(store)
        .with_no_client_auth())
}
