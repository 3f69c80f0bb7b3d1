//! `devmig placement ...`: step a as OpenStack Placement traits.
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use devmig_core::{DeviceKind, Inventory, MigrationSupport};
use devmig_fleet::Store;
use devmig_fleet::db::DbUrl;
use devmig_openstack::providers::{Desired, Target, check_node, desired};
use devmig_openstack::sync::{HostReport, ProviderOutcome};
use devmig_openstack::{OpenStackError, Placement, Syncer};
use devmig_vendors::placement_traits::{SourceTraits, source_traits};
use devmig_vendors::{Attributes, OPAQUE_MODEL, Registry};

use crate::backend::Backend;
use crate::cli::{Output, PlacementCommand, PlacementRequirementsArgs, PlacementSyncArgs};
use crate::error::CliError;
use crate::output::{json, line, table};
use crate::remote::{TlsClient, read_token};

impl From<OpenStackError> for CliError {
    fn from(e: OpenStackError) -> Self {
        match e {
            OpenStackError::Config(why) => CliError::Usage(why),
            OpenStackError::Status { status, .. } => {
                CliError::Remote { peer: "placement", status, code: "placement".into(), detail: e.to_string() }
            }
            _ => CliError::Remote { peer: "placement", status: 0, code: "placement".into(), detail: e.to_string() },
        }
    }
}

/// `devmig placement ...`.
pub fn placement(
    cmd: &PlacementCommand,
    backend: &Backend,
    registry: &Registry,
    o: Output,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    match cmd {
        PlacementCommand::Sync(args) => sync(args, backend, registry, o, out),
        PlacementCommand::Requirements(args) => requirements(args, backend, registry, o, out),
        PlacementCommand::DeviceSpec => device_spec(backend, registry, o, out),
    }
}

/// One local device as a Placement target: id, kind, attributes, a VF's PF.
type LocalTarget = (String, DeviceKind, Attributes, Option<String>);

/// This host's devices as Placement targets: every device discovery can migrate, with its
/// attributes (as the agent reports them) and a VF's PF. A device discovery could not read, or
/// whose attributes fail, stops the sync: a provider written without its traits would hide a
/// target from Placement that step b would accept.
fn local_targets(backend: &Backend) -> Result<Vec<LocalTarget>, CliError> {
    let inventory: Inventory = backend.inventory()?;
    let unreadable = |id: &dyn std::fmt::Display, why: String| CliError::Io {
        what: format!("device {id} cannot be described now ({why}): nothing synced, try again"),
        source: std::io::Error::other(why),
    };
    let mut out = Vec::new();
    for dev in inventory.devices {
        if !matches!(dev.kind, DeviceKind::MdevType | DeviceKind::SriovVf | DeviceKind::Pci) {
            continue;
        }
        match dev.migration.support {
            MigrationSupport::None => continue,
            MigrationSupport::Unknown => return Err(unreadable(&dev.id, "discovery could not read it".into())),
            _ => {}
        }
        let report = backend.attributes(&dev.id).map_err(|e| unreadable(&dev.id, e.to_string()))?;
        out.push((dev.id.to_string(), dev.kind, report.attributes, dev.physfn.clone()));
    }
    Ok(out)
}

fn host_desired(backend: &Backend, registry: &Registry, node: &str) -> Result<Desired, CliError> {
    let targets = local_targets(backend)?;
    Ok(desired(
        registry,
        node,
        targets.iter().map(|(id, kind, attributes, pf)| Target { id, kind: *kind, attributes, pf: pf.as_deref() }),
    ))
}

/// Every fresh host of a fleet database, as Placement would see it.
fn fleet_desired(db: &str, registry: &Registry) -> Result<Vec<Desired>, CliError> {
    let url: DbUrl = db.parse()?;
    let store = Store::open_existing(&url, 2)?;
    let mut by_host: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for d in store.devices(devmig_fleet::now_ms(), &|_| true)?.into_iter().filter(|d| !d.stale) {
        by_host.entry(d.host.clone()).or_default().push(d);
    }
    let mut hosts = Vec::new();
    for (host, devices) in by_host {
        check_node(&host)?;
        let targets =
            devices.iter().map(|d| Target { id: &d.device, kind: d.kind, attributes: &d.attributes, pf: None });
        hosts.push(desired(registry, &host, targets));
    }
    Ok(hosts)
}

/// A client of Placement at `url` with the token in `token_file` (TLS from `ca_file`).
pub fn placement_client(
    url: &str,
    token_file: &std::path::Path,
    ca_file: Option<&std::path::Path>,
) -> Result<Placement, CliError> {
    devmig_agent::tls::ensure_default_provider();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if url.starts_with("https://") {
        let ca_file = ca_file.ok_or_else(|| {
            CliError::Usage(format!("placement at {url}: an https:// Placement needs --placement-ca-file"))
        })?;
        let tls = TlsClient { ca_file: Some(ca_file.into()), client_cert: None, client_key: None };
        builder = builder.tls_backend_preconfigured(tls.config()?);
    }
    let http = builder.build().map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
    Ok(Placement::new(url, &read_token(token_file)?, http)?)
}

/// Nova's node name: `given`, else the kernel's host name; checked.
pub fn this_node(given: Option<&str>) -> Result<String, CliError> {
    let node = match given {
        Some(n) => n.to_string(),
        None => super::kernel_host_name()?,
    };
    check_node(&node)?;
    Ok(node)
}

fn sync(
    args: &PlacementSyncArgs,
    backend: &Backend,
    registry: &Registry,
    o: Output,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let hosts = match &args.fleet_db {
        Some(db) => fleet_desired(db, registry)?,
        None => vec![host_desired(backend, registry, &this_node(args.node.as_deref())?)?],
    };
    if args.dry_run {
        if o == Output::Json {
            json(out, "devmig.placement-plan/v1", &serde_json::json!({ "hosts": hosts }))?;
            return Ok(0);
        }
        let rows = hosts.iter().flat_map(|h| {
            h.providers.iter().map(|(name, p)| vec![name.clone(), p.devices.join(" "), p.traits.len().to_string()])
        });
        table(out, &["PROVIDER", "DEVICES", "DEVMIG TRAITS"], rows)?;
        let spec: usize = hosts.iter().map(|h| h.device_spec.len()).sum();
        if spec > 0 {
            line(
                out,
                format!("{spec} PCI functions: their traits go in [pci] device_spec (devmig placement device-spec)"),
            )?;
        }
        return Ok(0);
    }
    let (Some(url), Some(token_file)) = (&args.placement, &args.placement_token_file) else {
        return Err(CliError::Usage("give --placement and --placement-token-file (or --dry-run)".into()));
    };
    let syncer = Syncer::new(placement_client(url, token_file, args.placement_ca_file.as_deref())?);
    let rt = super::fleet::runtime()?;
    let started = std::time::Instant::now();
    let reports = rt.block_on(syncer.sync_all(&hosts, args.concurrency));
    let elapsed = started.elapsed();
    let failed = reports
        .iter()
        .filter(|r| {
            r.error.is_some() || r.providers.iter().any(|p| matches!(p.outcome, ProviderOutcome::Failed { .. }))
        })
        .count();
    if o == Output::Json {
        json(
            out,
            "devmig.placement-sync/v1",
            &serde_json::json!({
                "hosts": reports,
                "calls": syncer.placement().calls(),
                "writes": syncer.placement().writes(),
                "elapsed_ms": elapsed.as_millis() as u64,
            }),
        )?;
    } else {
        render_sync(&reports, out)?;
        line(
            out,
            format!(
                "{} in {} ms: {} calls to Placement, {} writes",
                plural(reports.len(), "host"),
                elapsed.as_millis(),
                syncer.placement().calls(),
                syncer.placement().writes()
            ),
        )?;
    }
    Ok(if failed > 0 { 3 } else { 0 })
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn render_sync(reports: &[HostReport], out: &mut dyn Write) -> Result<(), CliError> {
    let mut rows = Vec::new();
    for r in reports {
        if let Some(e) = &r.error {
            rows.push(vec![r.node.clone(), "-".into(), format!("failed: {e}")]);
        }
        for p in &r.providers {
            let what = match &p.outcome {
                ProviderOutcome::Unchanged => "unchanged".to_string(),
                ProviderOutcome::Missing => "no such provider in Placement (no enabled mdev type there?)".to_string(),
                ProviderOutcome::Failed { error } => format!("failed: {error}"),
                ProviderOutcome::Written { added, removed, conflicts } => {
                    let mut s = format!("+{} -{} traits", added.len(), removed.len());
                    if *conflicts > 0 {
                        s.push_str(&format!(" (after {} 409 conflicts)", conflicts));
                    }
                    s
                }
            };
            rows.push(vec![r.node.clone(), p.provider.clone(), what]);
        }
    }
    table(out, &["NODE", "PROVIDER", "RESULT"], rows)
}

/// The source's version string and model, from a device or a given string.
fn requirements(
    args: &PlacementRequirementsArgs,
    backend: &Backend,
    registry: &Registry,
    o: Output,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let (version, kind) = super::source_of(args.device.as_deref(), &args.source, backend)?;
    let model = registry.model_for_version(&version).map_or(OPAQUE_MODEL, |m| m.name()).to_string();
    let req = registry.requirement(&version)?;
    let traits = source_traits(registry, &model, &req);
    // A device says what it is; a string alone does not: then both forms are printed.
    let (mdev, pci) = match kind {
        Some(DeviceKind::SriovVf | DeviceKind::Pci) => (false, true),
        Some(_) => (true, false),
        None => (true, true),
    };
    let joined = traits.required.iter().map(String::as_str).collect::<Vec<_>>().join(",");
    let n = args.group;
    let extra_specs: Vec<String> = if mdev {
        std::iter::once(format!("resources{n}:{}=1", args.resource_class))
            .chain(traits.required.iter().map(|t| format!("trait{n}:{t}=required")))
            .collect()
    } else {
        Vec::new()
    };
    if o == Output::Json {
        json(
            out,
            "devmig.placement-requirements/v1",
            &serde_json::json!({
                "source": version,
                "model": model,
                "required": traits.required,
                "coarse": traits.coarse,
                "flavor_extra_specs": extra_specs,
                "allocation_candidates_query": mdev.then(|| format!("resources{n}={}:1&required{n}={joined}", args.resource_class)),
                "pci_alias_traits": pci.then_some(&joined),
            }),
        )?;
        return Ok(0);
    }
    line(out, format!("source: {version} (model {model})"))?;
    if mdev {
        line(out, "flavor extra specs for an mdev (one request group: the traits on the provider of the device):")?;
        for s in &extra_specs {
            line(out, format!("  {s}"))?;
        }
        line(out, "the same as a Placement query (GET /allocation_candidates):")?;
        line(out, format!("  resources{n}={}:1&required{n}={joined}", args.resource_class))?;
    }
    if pci {
        line(out, "for a PCI function: the traits of the flavor's [pci] alias (PCI in Placement):")?;
        line(out, format!("  \"traits\": \"{joined}\""))?;
    }
    render_coarse(&traits, out)?;
    Ok(0)
}

fn render_coarse(traits: &SourceTraits, out: &mut dyn Write) -> Result<(), CliError> {
    for c in &traits.coarse {
        line(out, format!("coarse: {} -> Placement checks {}; step b decides the rest", c.constraint, c.instead))?;
    }
    Ok(())
}

fn device_spec(backend: &Backend, registry: &Registry, o: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let d = host_desired(backend, registry, "local")?;
    if o == Output::Json {
        json(out, "devmig.placement-device-spec/v1", &serde_json::json!({ "device_spec": d.device_spec }))?;
        return Ok(0);
    }
    if d.device_spec.is_empty() {
        line(out, "no PCI function here can migrate: nothing for [pci] device_spec")?;
        return Ok(1);
    }
    line(out, "[pci]")?;
    for e in &d.device_spec {
        line(out, format!("device_spec = {}", e.to_nova_conf()))?;
    }
    if d.device_spec.iter().any(|e| e.coarse) {
        line(
            out,
            "# the VFs of some PF accept different sources: Nova needs one trait set per PF, so they carry the union",
        )?;
    }
    Ok(0)
}
