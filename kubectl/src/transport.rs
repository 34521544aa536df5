//! How the plugin reaches the explain API: through the API server's service proxy with the
//! user's kubeconfig, or at a URL given with `--url` (e.g. after `kubectl port-forward`).

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;
use sparkgang_common::api::explain::{
    EXPLAIN_SERVICE_NAME, EXPLAIN_SERVICE_NAMESPACE, EXPLAIN_SERVICE_PORT,
};

/// Why a call failed, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(
        "sparkgang's extender is not installed in this cluster: the API server has no service \
         {EXPLAIN_SERVICE_NAMESPACE}/{EXPLAIN_SERVICE_NAME} ({0}). Install deploy/ (docs/install.md), \
         or reach the extender with --url (kubectl -n sparkgang-system port-forward \
         svc/sparkgang-extender 8485, then --url http://127.0.0.1:8485)"
    )]
    NotInstalled(String),
    #[error("the sparkgang extender cannot answer now (HTTP 503): {0}")]
    NotReady(String),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "the explain API did not accept your credentials (HTTP 401): {0}. It needs a Kubernetes \
         bearer token: the kubeconfig's token, or --token (e.g. $(kubectl create token NAME))"
    )]
    Unauthenticated(String),
    #[error("the explain API refused (HTTP 403): {0}")]
    Forbidden(String),
    #[error("the explain API answered HTTP {status} to GET {path}: {body}")]
    Status {
        status: StatusCode,
        path: String,
        body: String,
    },
    #[error("cannot reach the explain API at {at}: {why}")]
    Unreachable { at: String, why: String },
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("the explain API's answer to GET {path} is not what this plugin reads: {why}")]
    Decode { path: String, why: String },
}

/// Where the kubeconfig comes from (`--kubeconfig`, `--context`; else `KUBECONFIG` or the
/// default file).
#[derive(Debug, Clone, Default)]
pub struct KubeOptions {
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    /// The bearer token for the explain API (`--token`); else the kubeconfig's, if it has one.
    pub token: Option<String>,
}

/// The header the token travels in through the API server's service proxy (which drops the
/// caller's `Authorization` once it has authenticated it).
const PROXIED_TOKEN_HEADER: &str = "x-sparkgang-authorization";

/// A way to the explain API, and to the API server when there is one.
pub struct Explain {
    /// `None` with `--url` and no usable kubeconfig.
    kube: Option<(Client, String)>,
    url: Option<String>,
    token: Option<String>,
}

impl Explain {
    /// Connects: with `url`, straight there (the kubeconfig is still read, if it loads, to
    /// find pods and the default namespace); otherwise through the API server.
    pub async fn connect(options: &KubeOptions, url: Option<String>) -> Result<Self, CallError> {
        let (kube, kube_token) = match load_kube(options).await {
            Ok((client, namespace, token)) => (Some((client, namespace)), token),
            Err(e) if url.is_none() => return Err(e),
            Err(_) => (None, None),
        };
        // A kubeconfig's token goes through the API server, or to a URL on this machine (a
        // port-forward); to any other URL only when given with --token.
        let kube_token = kube_token.filter(|_| url.as_deref().is_none_or(is_loopback_url));
        Ok(Explain {
            kube,
            url: url.map(|u| u.trim_end_matches('/').to_owned()),
            token: options.token.clone().or(kube_token),
        })
    }

    /// The kubeconfig context's namespace (`default` when it names none).
    pub fn default_namespace(&self) -> String {
        self.kube
            .as_ref()
            .map_or_else(|| "default".to_owned(), |(_, ns)| ns.clone())
    }

    /// `GET path` of the explain API (`/api/v1/...`), decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        let (status, body) = match (&self.url, &self.kube) {
            (Some(url), _) => get_url(url, path, self.token.as_deref()).await?,
            (None, Some((client, _))) => get_proxied(client, path, self.token.as_deref()).await?,
            (None, None) => {
                return Err(CallError::Kubeconfig(
                    "no kubeconfig and no --url".to_owned(),
                ));
            }
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        // Our errors are {"error": "..."}; the API server's are Status objects.
        let message = || {
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("error")
                        .or_else(|| v.get("message"))
                        .and_then(|m| m.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| text.trim().to_owned())
        };
        let message = || match message() {
            m if m.is_empty() => format!(
                "no answer body for GET {path} (not sparkgang's explain API at this address, or \
                 an older extender?)"
            ),
            m => m,
        };
        match status {
            StatusCode::OK => serde_json::from_str(&text).map_err(|e| CallError::Decode {
                path: path.to_owned(),
                why: e.to_string(),
            }),
            StatusCode::SERVICE_UNAVAILABLE if self.url.is_some() || !is_proxy_error(&text) => {
                Err(CallError::NotReady(message()))
            }
            StatusCode::NOT_FOUND if self.url.is_none() && is_proxy_error(&text) => {
                Err(CallError::NotInstalled(message()))
            }
            StatusCode::NOT_FOUND => Err(CallError::NotFound(message())),
            StatusCode::UNAUTHORIZED if !is_proxy_error(&text) => {
                Err(CallError::Unauthenticated(message()))
            }
            StatusCode::FORBIDDEN if !is_proxy_error(&text) => Err(CallError::Forbidden(message())),
            status => Err(CallError::Status {
                status,
                path: path.to_owned(),
                body: message(),
            }),
        }
    }

    /// The application of pod `namespace/name` (its `spark-app-id`, else `spark-app-selector`
    /// label), when the API server can be asked.
    pub async fn app_of_pod(&self, namespace: &str, name: &str) -> Option<String> {
        let (client, _) = self.kube.as_ref()?;
        let pod = Api::<Pod>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .ok()??;
        let labels = pod.metadata.labels?;
        labels
            .get("spark-app-id")
            .or_else(|| labels.get("spark-app-selector"))
            .cloned()
    }
}

/// `http://localhost…`, `http://127.0.0.1…` or `http://[::1]…`.
fn is_loopback_url(url: &str) -> bool {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .is_some_and(|h| matches!(h.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1"))
}

/// An answer from the API server itself (a `Status`), not from the extender behind it.
fn is_proxy_error(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Status"))
}

/// The client, the context's namespace and the kubeconfig's static bearer token (`token` or
/// `tokenFile`; exec and provider credentials stay inside the client).
async fn load_kube(options: &KubeOptions) -> Result<(Client, String, Option<String>), CallError> {
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| CallError::Kubeconfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &kube_options).await
        }
        None => Config::from_kubeconfig(&kube_options).await,
    }
    .map_err(|e| CallError::Kubeconfig(e.to_string()))?;
    let namespace = config.default_namespace.clone();
    let token = {
        use secrecy::ExposeSecret;
        let auth = &config.auth_info;
        auth.token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .or_else(|| {
                auth.token_file
                    .as_ref()
                    .and_then(|f| std::fs::read_to_string(f).ok())
                    .map(|t| t.trim().to_owned())
            })
    };
    let client = Client::try_from(config).map_err(|e| CallError::Kubeconfig(e.to_string()))?;
    Ok((client, namespace, token))
}

async fn get_proxied(
    client: &Client,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes), CallError> {
    let full = format!(
        "/api/v1/namespaces/{EXPLAIN_SERVICE_NAMESPACE}/services/{EXPLAIN_SERVICE_NAME}:{EXPLAIN_SERVICE_PORT}/proxy{path}"
    );
    let mut request = Request::get(&full);
    if let Some(t) = token {
        request = request.header(PROXIED_TOKEN_HEADER, format!("Bearer {t}"));
    }
    let request = request
        .body(Vec::new())
        .map_err(|e| CallError::Unreachable {
            at: full.clone(),
            why: e.to_string(),
        })?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .map_err(|e| CallError::Unreachable {
            at: "the API server".to_owned(),
            why: e.to_string(),
        })?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| CallError::Unreachable {
            at: "the API server".to_owned(),
            why: e.to_string(),
        })?
        .to_bytes();
    Ok((status, body))
}

/// `GET url+path` over plain HTTP (a port-forward or the playground's loopback listener).
async fn get_url(
    url: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes), CallError> {
    let unreachable = |why: String| CallError::Unreachable {
        at: url.to_owned(),
        why,
    };
    let uri: http::Uri = format!("{url}{path}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| unreachable(format!("not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(unreachable(
            "only http:// URLs are accepted (the explain listener is plain HTTP on loopback)"
                .to_owned(),
        ));
    }
    let host = uri.host().unwrap_or("127.0.0.1").to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(conn);
    let target = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.to_string());
    let mut request = Request::get(target)
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::ACCEPT, "application/json");
    if let Some(t) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    Ok((status, body))
}
