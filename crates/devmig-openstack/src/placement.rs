//! A small client of OpenStack Placement's REST API (microversion 1.39): providers, their
//! traits, custom traits and allocation candidates. Counts its calls.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::OpenStackError;

/// The microversion devmig speaks (Placement in OpenStack 2023.1 and later serves it).
pub const MICROVERSION: &str = "placement 1.39";

/// What a query value or path segment keeps unencoded.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// One resource provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Provider {
    /// Its UUID.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Its generation (bumped by every change to it).
    pub generation: u64,
    /// Its parent's UUID (none for a root).
    #[serde(default)]
    pub parent_provider_uuid: Option<String>,
}

#[derive(Deserialize)]
struct Providers {
    resource_providers: Vec<Provider>,
}

/// A provider's traits and the generation they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderTraits {
    /// Every trait it has.
    pub traits: BTreeSet<String>,
    /// The provider's generation.
    pub resource_provider_generation: u64,
}

#[derive(Deserialize)]
struct Traits {
    traits: BTreeSet<String>,
}

/// A client of one Placement endpoint with one token.
#[derive(Debug)]
pub struct Placement {
    base: String,
    token: String,
    http: reqwest::Client,
    calls: AtomicU64,
    writes: AtomicU64,
}

impl Placement {
    /// A client of `base` (`http://placement.example:8778`, with any path prefix), sending
    /// `token` as `X-Auth-Token`; `http` carries the TLS settings and timeouts.
    pub fn new(base: &str, token: &str, http: reqwest::Client) -> Result<Self, OpenStackError> {
        let url =
            reqwest::Url::parse(base).map_err(|e| OpenStackError::Config(format!("placement URL {base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() || url.fragment().is_some() {
            return Err(OpenStackError::Config(format!("placement URL {base:?} must be a plain http(s) base URL")));
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OpenStackError::Config("the placement token must be one printable word".into()));
        }
        Ok(Placement {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
            calls: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    /// Calls made so far (reads and writes).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Writes made so far (`PUT`s).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, Vec<u8>), OpenStackError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if method != reqwest::Method::GET {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", MICROVERSION)
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let unreachable = |e: reqwest::Error| OpenStackError::Unreachable {
            base: self.base.clone(),
            detail: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        Ok((status, bytes.to_vec()))
    }

    async fn json<T: DeserializeOwned>(&self, path: &str) -> Result<T, OpenStackError> {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            return Err(status_error("GET", path, status, &body));
        }
        parse(path, &body)
    }

    /// The provider called `name`, if there is one.
    pub async fn provider_named(&self, name: &str) -> Result<Option<Provider>, OpenStackError> {
        let path = format!("/resource_providers?name={}", enc(name));
        Ok(self.json::<Providers>(&path).await?.resource_providers.into_iter().next())
    }

    /// Every provider in the tree of the root `root_uuid`.
    pub async fn tree(&self, root_uuid: &str) -> Result<Vec<Provider>, OpenStackError> {
        let path = format!("/resource_providers?in_tree={}", enc(root_uuid));
        Ok(self.json::<Providers>(&path).await?.resource_providers)
    }

    /// A provider's traits with its generation.
    pub async fn provider_traits(&self, uuid: &str) -> Result<ProviderTraits, OpenStackError> {
        self.json(&format!("/resource_providers/{}/traits", enc(uuid))).await
    }

    /// Replaces a provider's traits if it is still at `generation`: the new generation, or
    /// `None` when someone changed it first (409: read again, merge, retry).
    pub async fn set_provider_traits(
        &self,
        uuid: &str,
        traits: &BTreeSet<String>,
        generation: u64,
    ) -> Result<Option<u64>, OpenStackError> {
        let path = format!("/resource_providers/{}/traits", enc(uuid));
        let body = serde_json::json!({ "traits": traits, "resource_provider_generation": generation });
        let (status, resp) = self.send(reqwest::Method::PUT, &path, Some(body)).await?;
        match status {
            200 => Ok(Some(parse::<ProviderTraits>(&path, &resp)?.resource_provider_generation)),
            409 => Ok(None),
            _ => Err(status_error("PUT", &path, status, &resp)),
        }
    }

    /// The traits whose names start with `prefix`.
    pub async fn traits_starting_with(&self, prefix: &str) -> Result<BTreeSet<String>, OpenStackError> {
        let path = format!("/traits?name={}", enc(&format!("startswith:{prefix}")));
        Ok(self.json::<Traits>(&path).await?.traits)
    }

    /// Creates the custom trait `name` (201), or finds it there already (204).
    pub async fn create_trait(&self, name: &str) -> Result<(), OpenStackError> {
        let path = format!("/traits/{}", enc(name));
        let (status, body) = self.send(reqwest::Method::PUT, &path, None).await?;
        if !matches!(status, 201 | 204) {
            return Err(status_error("PUT", &path, status, &body));
        }
        Ok(())
    }

    /// Creates a provider named `name` (under `parent`, a UUID); its UUID. What nova-compute
    /// does for its node and devices: devmig's benchmark builds Nova-shaped trees with it.
    pub async fn create_provider(&self, name: &str, parent: Option<&str>) -> Result<String, OpenStackError> {
        let mut body = serde_json::json!({ "name": name });
        if let Some(p) = parent {
            body["parent_provider_uuid"] = serde_json::json!(p);
        }
        let (status, resp) = self.send(reqwest::Method::POST, "/resource_providers", Some(body)).await?;
        if status != 200 {
            return Err(status_error("POST", "/resource_providers", status, &resp));
        }
        Ok(parse::<Provider>("/resource_providers", &resp)?.uuid)
    }

    /// Sets a new provider's (generation 0) one inventory: `total` of `class`.
    pub async fn set_inventory(&self, uuid: &str, class: &str, total: u32) -> Result<(), OpenStackError> {
        let path = format!("/resource_providers/{}/inventories", enc(uuid));
        let body =
            serde_json::json!({ "resource_provider_generation": 0, "inventories": { class: { "total": total } } });
        let (status, resp) = self.send(reqwest::Method::PUT, &path, Some(body)).await?;
        if status != 200 {
            return Err(status_error("PUT", &path, status, &resp));
        }
        Ok(())
    }

    /// The providers `GET /allocation_candidates` offers (at most `limit` candidates, as Nova's
    /// `[scheduler] max_placement_results` asks) for one request group of `resources` (`VGPU:1`)
    /// with `required` traits, by UUID (a numbered group: the traits and the resources on the
    /// same provider).
    pub async fn candidate_providers(
        &self,
        resources: &str,
        required: &BTreeSet<String>,
        limit: usize,
    ) -> Result<BTreeSet<String>, OpenStackError> {
        let mut path = format!("/allocation_candidates?resources1={}&limit={limit}", enc(resources));
        if !required.is_empty() {
            let joined = required.iter().map(String::as_str).collect::<Vec<_>>().join(",");
            path.push_str(&format!("&required1={}", enc(&joined)));
        }
        let (status, body) = self.send(reqwest::Method::GET, &path, None).await?;
        if status == 400 && String::from_utf8_lossy(&body).contains("No such trait") {
            // Placement refuses a trait nobody created: no provider carries it, none qualifies.
            return Ok(BTreeSet::new());
        }
        if status != 200 {
            return Err(status_error("GET", &path, status, &body));
        }
        let v: serde_json::Value = parse(&path, &body)?;
        let summaries = v.get("provider_summaries").and_then(|s| s.as_object()).ok_or_else(|| {
            OpenStackError::BadBody { path: path.clone(), detail: "no provider_summaries object".into() }
        })?;
        // Providers that hold resources in some candidate's allocations.
        let mut out = BTreeSet::new();
        for request in v.get("allocation_requests").and_then(|r| r.as_array()).into_iter().flatten() {
            if let Some(allocs) = request.get("allocations").and_then(|a| a.as_object()) {
                out.extend(allocs.keys().filter(|k| summaries.contains_key(*k)).cloned());
            }
        }
        Ok(out)
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

fn parse<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, OpenStackError> {
    serde_json::from_slice(body).map_err(|e| OpenStackError::BadBody { path: path.to_string(), detail: e.to_string() })
}

fn status_error(method: &'static str, path: &str, status: u16, body: &[u8]) -> OpenStackError {
    let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
    OpenStackError::Status { method, path: path.to_string(), status, body: text }
}
