//! The fleet's state: hosts and their reported devices, step-a queries, holds and placements.
use std::hash::{Hash, Hasher};

use devmig_agent::HostReport;
use devmig_vendors::{Attributes, Requirement};
use serde::Serialize;

use crate::FleetError;
use crate::db::{DbUrl, Pool, Val};
use crate::refresh::{Refresh, Refresher};
use crate::schema;
use crate::step_a;

/// What became of a host report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// Stored: devices replaced.
    Applied,
    /// Newer generation, same devices: only freshness and generation moved.
    Unchanged,
    /// Older than (or equal to) what the fleet holds: ignored.
    Stale,
}

pub use devmig_api::fleet::HostRow;

/// A device as the fleet knows it (`GET /api/v1/devices` lists them; row ids and the agent URL
/// stay inside the fleet).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DeviceRow {
    /// Row id.
    #[serde(skip, default)]
    pub row: i64,
    /// Host row id.
    #[serde(skip, default)]
    pub host_row: i64,
    /// Host name.
    pub host: String,
    /// Agent URL.
    #[serde(skip, default)]
    pub url: String,
    /// Device id.
    pub device: String,
    /// Kind (`sriov_vf`, `mdev`, `mdev_type`, `pci`).
    pub kind: devmig_core::DeviceKind,
    /// Vendor model.
    pub model: String,
    /// Version string.
    pub version: String,
    /// Step-a attributes.
    pub attributes: Attributes,
    /// Free as reported.
    pub free: bool,
    /// Held by this migration (a fleet claim the host has not reported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// Whether its host is stale.
    pub stale: bool,
}

/// The fleet store.
#[derive(Debug)]
pub struct Store {
    pool: Pool,
    /// Unchanged reports, written in batches.
    refresher: Refresher,
    /// Each host's device digest as this replica last stored it: only a hint (another replica
    /// may have moved on), used to send likely refreshes to the batch and the rest straight
    /// to the full path.
    digests: parking_lot::Mutex<std::collections::HashMap<String, String>>,
    /// A host whose last report is older than this is stale.
    pub stale_after_ms: i64,
    /// How long a fleet claim holds a device before a report must confirm it.
    pub hold_ms: i64,
    /// Whether the database held opaque devices when last asked (at most
    /// [`OPAQUE_RECHECK`] ago), so step a skips their query in fleets without any.
    opaque_seen: parking_lot::Mutex<Option<(std::time::Instant, bool)>>,
}

/// How long [`Store::has_opaque_devices`] trusts its last answer.
pub const OPAQUE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A placement still `running` after this long was abandoned (its replica died).
const STALE_PLACEMENT_MS: i64 = 300_000;

/// Which devices' models a step-a query takes.
#[derive(Debug, Clone, Copy)]
enum Models<'a> {
    /// Devices of this model.
    Only(&'a str),
    /// Devices of any model (an opaque source: its step a is the driver prefix).
    Any,
}

impl<'a> Models<'a> {
    /// For a source of `model`.
    fn of_source(model: &'a str) -> Self {
        if model == devmig_vendors::OPAQUE_MODEL { Models::Any } else { Models::Only(model) }
    }

    /// The value bound at the model placeholder.
    fn value(self) -> &'a str {
        match self {
            Models::Only(m) => m,
            Models::Any => devmig_vendors::OPAQUE_MODEL,
        }
    }

    /// The SQL condition on `d.model`, its value at placeholder `$n` (in use either way).
    fn clause(self, n: usize) -> String {
        match self {
            Models::Only(_) => format!("d.model = ${n}"),
            Models::Any => format!("(d.model = ${n} OR d.model <> ${n})"),
        }
    }
}

const DEVICE_COLS: &str = "d.id, d.host_id, h.name, h.url, d.device, d.kind, d.model, d.version, d.attributes, d.free, \
                           d.held_by, d.held_until_ms, h.last_seen_ms";

fn digest(r: &HostReport) -> Result<String, FleetError> {
    let text = serde_json::to_string(&r.devices).map_err(|e| FleetError::Internal(e.to_string()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Ok(format!("{:016x}-{}", h.finish(), text.len()))
}

fn int(v: u64, what: &str) -> Result<Val, FleetError> {
    i64::try_from(v).map(Val::Int).map_err(|_| FleetError::BadRequest(format!("{what} {v} is out of range")))
}

impl Store {
    /// Opens (and migrates) the database, creating it if needed.
    pub fn open(url: &DbUrl, pool_size: usize) -> Result<Store, FleetError> {
        Self::open_with(url, pool_size, true)
    }

    /// Opens (and migrates) a database that already holds a fleet: a missing SQLite file or
    /// a database without devmig's schema is an error, and nothing is created.
    pub fn open_existing(url: &DbUrl, pool_size: usize) -> Result<Store, FleetError> {
        Self::open_with(url, pool_size, false)
    }

    fn open_with(url: &DbUrl, pool_size: usize, create: bool) -> Result<Store, FleetError> {
        let pool = Pool::open(url, pool_size, create)?;
        // (SQLite was checked when its file was opened.)
        if !create && matches!(url, DbUrl::Postgres(_)) && !schema::present_postgres(&mut pool.writer())? {
            return Err(schema::no_fleet("the PostgreSQL database"));
        }
        schema::migrate(&mut pool.writer())?;
        Ok(Store {
            pool,
            refresher: Refresher::default(),
            digests: parking_lot::Mutex::default(),
            stale_after_ms: 90_000,
            hold_ms: 120_000,
            opaque_seen: parking_lot::Mutex::default(),
        })
    }

    /// Reports arriving after this are fresh.
    pub fn fresh_since(&self, now_ms: i64) -> i64 {
        now_ms - self.stale_after_ms
    }

    /// Stores a report unless the fleet already holds this or a newer generation.
    pub fn apply_report(&self, r: &HostReport, now_ms: i64) -> Result<ReportOutcome, FleetError> {
        if r.devices.iter().any(|d| d.model == devmig_vendors::OPAQUE_MODEL) {
            *self.opaque_seen.lock() = Some((std::time::Instant::now(), true));
        }
        let digest = digest(r)?;
        let generation = int(r.generation, "generation")?;
        // The steady state: same URL, same devices, a newer generation, batched with others.
        let refresh = Refresh {
            host: r.host.clone(),
            url: r.url.clone(),
            identity: r.identity.clone(),
            digest: digest.clone(),
            generation: generation.int(),
        };
        let likely = self.digests.lock().get(&r.host).is_some_and(|d| *d == digest);
        if likely && self.refresher.refresh(refresh, now_ms, &self.pool)? {
            return Ok(ReportOutcome::Unchanged);
        }
        let outcome = self.apply_in_full(r, &digest, generation, now_ms)?;
        if outcome != ReportOutcome::Stale {
            self.digests.lock().insert(r.host.clone(), digest);
        }
        Ok(outcome)
    }

    /// The full path of a report: the conditional upsert, then the devices when they changed.
    fn apply_in_full(
        &self,
        r: &HostReport,
        digest: &str,
        generation: Val,
        now_ms: i64,
    ) -> Result<ReportOutcome, FleetError> {
        let mut conn = self.pool.writer();
        conn.transaction(|c| {
            // The conditional upsert takes the host's row lock: concurrent reports of one host
            // (also through other replicas) queue here, and an older one changes nothing.
            let won = c.query(
                "INSERT INTO hosts (name, url, identity, generation, digest, last_seen_ms, device_count) \
                 VALUES ($1, $2, $3, $4, '', $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET url = excluded.url, identity = excluded.identity, \
                 generation = excluded.generation, last_seen_ms = excluded.last_seen_ms, \
                 device_count = excluded.device_count \
                 WHERE hosts.generation < excluded.generation AND hosts.url = excluded.url \
                 AND (hosts.identity = excluded.identity OR hosts.identity = '') RETURNING id",
                &[
                    r.host.as_str().into(),
                    r.url.as_str().into(),
                    r.identity.as_str().into(),
                    generation,
                    Val::Int(now_ms),
                    int(r.devices.len() as u64, "devices")?,
                ],
            )?;
            let Some(host_id) = won.first().map(|row| row[0].int()) else {
                let known = c.query("SELECT url, identity FROM hosts WHERE name = $1", &[r.host.as_str().into()])?;
                // One host name, one agent: another identity is another agent (a second agent
                // with the same hostname, a reinstalled host) until an operator says otherwise.
                if let Some(held) =
                    known.first().map(|row| row[1].text().to_string()).filter(|i| !i.is_empty() && *i != r.identity)
                {
                    return Err(FleetError::IdentityConflict(format!(
                        "host {} is held by the agent with identity {held}, and this report comes from identity \
                         {}: two agents report under one host name. Give each agent its own --host-name; if this \
                         agent replaced the other, run `devmig fleet forget {}` and its next report registers it",
                        r.host, r.identity, r.host
                    )));
                }
                // The fleet sends its agent credentials to a host's URL: a report never moves it.
                if let Some(url) = known.first().map(|row| row[0].text().to_string()).filter(|u| *u != r.url) {
                    return Err(FleetError::Conflict(format!(
                        "host {} reports its agent at {}, but the fleet knows it at {url}; the fleet never sends \
                         credentials to a URL that changed without an operator: if the agent moved, run \
                         `devmig fleet forget {}` and its next report registers it anew",
                        r.host, r.url, r.host
                    )));
                }
                return Ok(ReportOutcome::Stale);
            };
            let old = c.query("SELECT digest FROM hosts WHERE id = $1", &[Val::Int(host_id)])?;
            if old.first().is_some_and(|row| row[0].text() == digest) {
                return Ok(ReportOutcome::Unchanged);
            }
            let holds = c.query(
                "SELECT device, held_by, held_until_ms FROM devices WHERE host_id = $1 AND held_by IS NOT NULL",
                &[Val::Int(host_id)],
            )?;
            c.exec("DELETE FROM attrs WHERE device_id IN (SELECT id FROM devices WHERE host_id = $1)", &[Val::Int(host_id)])?;
            c.exec("DELETE FROM devices WHERE host_id = $1", &[Val::Int(host_id)])?;
            let mut rows = Vec::with_capacity(r.devices.len());
            for d in &r.devices {
                // A hold survives a report that still shows the device free (built before the claim).
                let hold = holds.iter().find(|h| h[0].text() == d.id && d.free);
                rows.push(vec![
                    Val::Int(host_id),
                    Val::from(d.id.as_str()),
                    Val::from(d.kind.as_str()),
                    Val::from(d.model.as_str()),
                    Val::from(d.version.as_str()),
                    Val::Text(to_json(&d.attributes)?),
                    Val::Text(to_json(&d.facts)?),
                    Val::Int(i64::from(d.free)),
                    hold.map_or(Val::Null, |h| h[1].clone()),
                    hold.map_or(Val::Int(0), |h| h[2].clone()),
                ]);
            }
            let ids = insert_rows(
                c,
                "INSERT INTO devices (host_id, device, kind, model, version, attributes, facts, free, held_by, held_until_ms)",
                rows,
                " RETURNING id, device",
            )?;
            let mut rows = Vec::new();
            for row in &ids {
                let Some(d) = r.devices.iter().find(|d| d.id == row[1].text()) else { continue };
                for (name, key) in step_a::attr_rows(&d.attributes) {
                    rows.push(vec![row[0].clone(), Val::from(name), Val::from(key)]);
                }
            }
            insert_rows(c, "INSERT INTO attrs (device_id, name, akey)", rows, "")?;
            c.exec("UPDATE hosts SET digest = $1 WHERE id = $2", &[Val::Text(digest.to_string()), Val::Int(host_id)])?;
            Ok(ReportOutcome::Applied)
        })
    }

    /// Forgets `host`: its row, devices and their attributes. False when there was no such host.
    pub fn forget(&self, host: &str) -> Result<bool, FleetError> {
        self.digests.lock().remove(host);
        let mut conn = self.pool.writer();
        conn.transaction(|c| {
            let found = c.query("SELECT id FROM hosts WHERE name = $1", &[host.into()])?;
            let Some(id) = found.first().map(|row| row[0].int()) else { return Ok(false) };
            c.exec(
                "DELETE FROM attrs WHERE device_id IN (SELECT id FROM devices WHERE host_id = $1)",
                &[Val::Int(id)],
            )?;
            c.exec("DELETE FROM devices WHERE host_id = $1", &[Val::Int(id)])?;
            c.exec("DELETE FROM hosts WHERE id = $1", &[Val::Int(id)])?;
            Ok(true)
        })
    }

    /// How many hosts are (fresh, stale).
    pub fn host_counts(&self, now_ms: i64) -> Result<(i64, i64), FleetError> {
        let rows = self.pool.get().query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN last_seen_ms >= $1 THEN 1 ELSE 0 END), 0) FROM hosts",
            &[Val::Int(self.fresh_since(now_ms))],
        )?;
        let (all, fresh) = rows.first().map_or((0, 0), |r| (r[0].int(), r[1].int()));
        Ok((fresh, all - fresh))
    }

    /// Every host, by name.
    pub fn hosts(&self, now_ms: i64) -> Result<Vec<HostRow>, FleetError> {
        let fresh = self.fresh_since(now_ms);
        // Free: mdevs, VFs and functions reported free and held by no placement.
        let rows = self.pool.get().query(
            "SELECT h.name, h.url, h.generation, h.last_seen_ms, h.device_count, h.identity, \
             COALESCE(SUM(CASE WHEN d.free > 0 AND d.kind <> 'mdev_type' \
             AND (d.held_by IS NULL OR d.held_until_ms < $1) THEN 1 ELSE 0 END), 0) \
             FROM hosts h LEFT JOIN devices d ON d.host_id = h.id \
             GROUP BY h.id, h.name, h.url, h.generation, h.last_seen_ms, h.device_count, h.identity \
             ORDER BY h.name",
            &[Val::Int(now_ms)],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| HostRow {
                name: r[0].text().to_string(),
                url: r[1].text().to_string(),
                identity: r[5].text().to_string(),
                generation: u64::try_from(r[2].int()).unwrap_or(0),
                last_seen_ms: r[3].int(),
                devices: r[4].int(),
                free: r[6].int(),
                stale: r[3].int() < fresh,
            })
            .collect())
    }

    fn device_rows(&self, sql: &str, params: &[Val], now_ms: i64) -> Result<Vec<DeviceRow>, FleetError> {
        let fresh = self.fresh_since(now_ms);
        let rows = self.pool.get().query(sql, params)?;
        rows.into_iter()
            .map(|r| {
                let held = r[10].opt_text().filter(|_| r[11].int() >= now_ms).map(str::to_string);
                Ok(DeviceRow {
                    row: r[0].int(),
                    host_row: r[1].int(),
                    host: r[2].text().to_string(),
                    url: r[3].text().to_string(),
                    device: r[4].text().to_string(),
                    kind: devmig_core::DeviceKind::from_name(r[5].text())
                        .ok_or_else(|| FleetError::Internal(format!("device kind {:?} in the store", r[5].text())))?,
                    model: r[6].text().to_string(),
                    version: r[7].text().to_string(),
                    attributes: serde_json::from_str(r[8].text()).map_err(|e| FleetError::Internal(e.to_string()))?,
                    free: r[9].int() != 0,
                    held_by: held,
                    stale: r[12].int() < fresh,
                })
            })
            .collect()
    }

    /// Every device (of hosts whose name `filter` accepts), by host and id.
    pub fn devices(&self, now_ms: i64, filter: &dyn Fn(&str) -> bool) -> Result<Vec<DeviceRow>, FleetError> {
        let sql =
            format!("SELECT {DEVICE_COLS} FROM devices d JOIN hosts h ON h.id = d.host_id ORDER BY h.name, d.device");
        Ok(self.device_rows(&sql, &[], now_ms)?.into_iter().filter(|d| filter(&d.host)).collect())
    }

    /// One device of one host.
    pub fn device(&self, host: &str, device: &str, now_ms: i64) -> Result<Option<DeviceRow>, FleetError> {
        let sql = format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN hosts h ON h.id = d.host_id WHERE h.name = $1 AND d.device = $2"
        );
        Ok(self.device_rows(&sql, &[host.into(), device.into()], now_ms)?.into_iter().next())
    }

    /// Every device of `model` on fresh hosts (what explanations sift through); for an opaque
    /// source, every device (its step a is the driver prefix, whatever the model).
    pub fn model_devices(&self, model: &str, now_ms: i64) -> Result<Vec<DeviceRow>, FleetError> {
        let models = Models::of_source(model);
        let sql = format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN hosts h ON h.id = d.host_id WHERE {} AND h.last_seen_ms >= $2",
            models.clause(1)
        );
        self.device_rows(&sql, &[models.value().into(), Val::Int(self.fresh_since(now_ms))], now_ms)
    }

    /// Every device reported as `model` on fresh hosts (`opaque` ones alone, unlike
    /// [`Store::model_devices`]).
    pub fn model_devices_exactly(&self, model: &str, now_ms: i64) -> Result<Vec<DeviceRow>, FleetError> {
        let sql = format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN hosts h ON h.id = d.host_id WHERE d.model = $1 AND h.last_seen_ms >= $2"
        );
        self.device_rows(&sql, &[model.into(), Val::Int(self.fresh_since(now_ms))], now_ms)
    }

    /// Step a: free, unheld devices of fresh hosts meeting `req`, up to `limit` rows; only on
    /// `within` hosts when given, never on `exclude` hosts. Every row passed `satisfied_by`.
    pub fn candidates(
        &self,
        model: &str,
        req: &Requirement,
        now_ms: i64,
        exclude: &[i64],
        within: Option<&[i64]>,
        limit: Option<usize>,
    ) -> Result<Vec<DeviceRow>, FleetError> {
        Ok(self.candidates_page(model, req, now_ms, exclude, within, limit)?.0)
    }

    /// [`Store::candidates`], and whether the query ran out of rows before `limit` (rows it
    /// dropped afterwards, on excluded hosts, still count: they do not mean the end).
    pub fn candidates_page(
        &self,
        model: &str,
        req: &Requirement,
        now_ms: i64,
        exclude: &[i64],
        within: Option<&[i64]>,
        limit: Option<usize>,
    ) -> Result<(Vec<DeviceRow>, bool), FleetError> {
        self.query_candidates(Models::of_source(model), req, now_ms, exclude, (within, limit))
    }

    /// Whether any host reported an opaque device: asked of the database at most once per
    /// [`OPAQUE_RECHECK`] (another replica may have stored one since), and known at once when
    /// this replica stores one.
    pub fn has_opaque_devices(&self) -> Result<bool, FleetError> {
        if let Some((at, seen)) = *self.opaque_seen.lock() {
            if seen || at.elapsed() < OPAQUE_RECHECK {
                return Ok(seen);
            }
        }
        let rows = self
            .pool
            .get()
            .query("SELECT 1 FROM devices WHERE model = $1 LIMIT 1", &[Val::from(devmig_vendors::OPAQUE_MODEL)])?;
        let seen = !rows.is_empty();
        *self.opaque_seen.lock() = Some((std::time::Instant::now(), seen));
        Ok(seen)
    }

    /// Step a's other half for a source a model knows: free, unheld opaque devices (reported by
    /// hosts where that model is switched off) whose kernel string has the source's driver
    /// prefix. Uses the `(model, version)` index.
    pub fn opaque_candidates(
        &self,
        source_version: &str,
        now_ms: i64,
        exclude: &[i64],
        within: Option<&[i64]>,
    ) -> Result<Vec<DeviceRow>, FleetError> {
        let req = devmig_vendors::described::opaque_requirement(source_version);
        let only = Models::Only(devmig_vendors::OPAQUE_MODEL);
        Ok(self.query_candidates(only, &req, now_ms, exclude, (within, None))?.0)
    }

    fn query_candidates(
        &self,
        models: Models<'_>,
        req: &Requirement,
        now_ms: i64,
        exclude: &[i64],
        (within, limit): (Option<&[i64]>, Option<usize>),
    ) -> Result<(Vec<DeviceRow>, bool), FleetError> {
        if within.is_some_and(<[i64]>::is_empty) {
            return Ok((Vec::new(), true));
        }
        let base = [Val::Int(now_ms), Val::Int(self.fresh_since(now_ms)), Val::from(models.value())];
        // `d.model = $3` already says what the model constraint says: one join fewer to plan.
        let model_value = devmig_vendors::AttrValue::String(models.value().to_string());
        let rest = Requirement {
            all: req
                .all
                .iter()
                .filter(|c| {
                    !matches!(c, devmig_vendors::Constraint::Equals { attr, value }
                        if attr == devmig_vendors::models::MODEL_ATTR && *value == model_value)
                })
                .cloned()
                .collect(),
        };
        let compiled = step_a::compile(&rest, base.len() + 1);
        if !compiled.satisfiable {
            return Ok((Vec::new(), true));
        }
        let mut params: Vec<Val> = base.to_vec();
        params.extend(compiled.params);
        let mut sql = format!(
            "SELECT {DEVICE_COLS} FROM devices d JOIN hosts h ON h.id = d.host_id{} \
             WHERE d.free = 1 AND (d.held_by IS NULL OR d.held_until_ms < $1) AND h.last_seen_ms >= $2 AND {}",
            compiled.joins,
            models.clause(3)
        );
        // The text depends only on the requirement's shape, so prepared statements (and
        // PostgreSQL's generic plans) are reused; excluded hosts are dropped below instead.
        if let Some(w) = within {
            // Host ids are integers from our own rows: inlined, never user text.
            let ids: Vec<String> = w.iter().map(i64::to_string).collect();
            sql.push_str(&format!(" AND d.host_id IN ({})", ids.join(",")));
        }
        if let Some(l) = limit {
            sql.push_str(&format!(" LIMIT ${}", params.len() + 1));
            params.push(Val::Int(i64::try_from(l).unwrap_or(i64::MAX)));
        }
        let rows = self.device_rows(&sql, &params, now_ms)?;
        let exhausted = limit.is_none_or(|l| rows.len() < l);
        let kept = rows.into_iter().filter(|d| !exclude.contains(&d.host_row) && req.satisfied_by(&d.attributes));
        Ok((kept.collect(), exhausted))
    }

    /// The vendor facts of every device of a fresh host, by row id (what-if recomputes from them).
    pub fn facts(
        &self,
        now_ms: i64,
    ) -> Result<std::collections::HashMap<i64, devmig_vendors::DeviceFacts>, FleetError> {
        let rows = self.pool.get().query(
            "SELECT d.id, d.facts FROM devices d JOIN hosts h ON h.id = d.host_id WHERE h.last_seen_ms >= $1",
            &[Val::Int(self.fresh_since(now_ms))],
        )?;
        rows.into_iter()
            .map(|r| {
                let f = serde_json::from_str(r[1].text())
                    .map_err(|e| FleetError::Internal(format!("stored facts: {e}")))?;
                Ok((r[0].int(), f))
            })
            .collect()
    }

    /// Row ids of the named hosts the fleet knows.
    pub fn host_ids(&self, names: &std::collections::BTreeSet<String>) -> Result<Vec<i64>, FleetError> {
        let mut conn = self.pool.get();
        let mut ids = Vec::new();
        for n in names {
            if let Some(r) = conn.query("SELECT id FROM hosts WHERE name = $1", &[n.as_str().into()])?.first() {
                ids.push(r[0].int());
            }
        }
        Ok(ids)
    }

    /// Marks a device held by a migration's fleet claim (until a report confirms the claim).
    pub fn hold(&self, device_row: i64, migration_id: &str, now_ms: i64) -> Result<(), FleetError> {
        self.pool.writer().exec(
            "UPDATE devices SET held_by = $1, held_until_ms = $2 WHERE id = $3",
            &[migration_id.into(), Val::Int(now_ms + self.hold_ms), Val::Int(device_row)],
        )?;
        Ok(())
    }

    /// Drops a migration's holds (its claims were released).
    pub fn unhold(&self, migration_id: &str) -> Result<(), FleetError> {
        self.pool
            .writer()
            .exec("UPDATE devices SET held_by = NULL, held_until_ms = 0 WHERE held_by = $1", &[migration_id.into()])?;
        Ok(())
    }

    /// Reserves a migration id for one placement. `Err(Conflict)` when another placement (on
    /// this or another replica) holds it; `Ok(Some(host))` when it was already placed there.
    pub fn begin_placement(&self, migration_id: &str, now_ms: i64) -> Result<Option<String>, FleetError> {
        let mut conn = self.pool.writer();
        // A placement left running by a crashed replica frees its migration id after a while.
        conn.exec(
            "DELETE FROM placements WHERE migration_id = $1 AND state = 'running' AND created_ms < $2",
            &[migration_id.into(), Val::Int(now_ms - STALE_PLACEMENT_MS)],
        )?;
        let n = conn.exec(
            "INSERT INTO placements (migration_id, state, created_ms) VALUES ($1, 'running', $2) ON CONFLICT (migration_id) DO NOTHING",
            &[migration_id.into(), Val::Int(now_ms)],
        )?;
        if n == 1 {
            return Ok(None);
        }
        let rows = conn.query("SELECT state, host FROM placements WHERE migration_id = $1", &[migration_id.into()])?;
        match rows.first() {
            Some(r) if r[0].text() == "placed" => Ok(Some(r[1].text().to_string())),
            _ => Err(FleetError::Conflict(format!("migration {migration_id} is being placed by another request"))),
        }
    }

    /// Records a finished placement (`host` set) or forgets a failed one.
    pub fn end_placement(&self, migration_id: &str, placed: Option<(&str, &str)>) -> Result<(), FleetError> {
        let mut conn = self.pool.writer();
        match placed {
            Some((host, answer)) => conn.exec(
                "UPDATE placements SET state = 'placed', host = $1, answer = $2 WHERE migration_id = $3",
                &[host.into(), answer.into(), migration_id.into()],
            )?,
            None => conn.exec("DELETE FROM placements WHERE migration_id = $1", &[migration_id.into()])?,
        };
        Ok(())
    }

    /// Refreshes the planner's statistics (after a bulk load).
    pub fn analyze(&self) -> Result<(), FleetError> {
        self.pool.writer().batch("ANALYZE")
    }
}

/// Rows per multi-row INSERT: well under both databases' parameter limits (SQLite 32,766,
/// PostgreSQL 65,535) for the widest table (10 columns).
const ROWS_PER_INSERT: usize = 256;

/// Inserts `rows` (all of one width) in multi-row statements of [`ROWS_PER_INSERT`]; returns
/// what `returning` asks for, in order.
fn insert_rows(
    c: &mut crate::db::Conn,
    head: &str,
    rows: Vec<Vec<Val>>,
    returning: &str,
) -> Result<Vec<Vec<Val>>, FleetError> {
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(ROWS_PER_INSERT).collect();
        let mut sql = format!("{head} VALUES ");
        let mut params = Vec::new();
        for (k, row) in chunk.into_iter().enumerate() {
            let marks: Vec<String> = (1..=row.len()).map(|i| format!("${}", params.len() + i)).collect();
            sql.push_str(if k > 0 { ", (" } else { "(" });
            sql.push_str(&marks.join(", "));
            sql.push(')');
            params.extend(row);
        }
        sql.push_str(returning);
        if returning.is_empty() {
            c.exec(&sql, &params)?;
        } else {
            out.extend(c.query(&sql, &params)?);
        }
    }
    Ok(out)
}

/// A value as a JSON column.
fn to_json<T: Serialize>(v: &T) -> Result<String, FleetError> {
    serde_json::to_string(v).map_err(|e| FleetError::Internal(e.to_string()))
}
