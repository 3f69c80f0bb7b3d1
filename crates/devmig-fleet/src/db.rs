//! One SQL surface over SQLite and PostgreSQL: the same statement text (`$1`, `$2`, ... in
//! order of first use) and the same two value types run on both.
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::FleetError;

/// A parameter or column value: the schema uses only BIGINT and TEXT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// BIGINT.
    Int(i64),
    /// TEXT.
    Text(String),
    /// NULL.
    Null,
}

impl Val {
    /// The integer, or 0 for NULL and text.
    pub fn int(&self) -> i64 {
        if let Val::Int(i) = self { *i } else { 0 }
    }

    /// The text, or "" for NULL and integers.
    pub fn text(&self) -> &str {
        if let Val::Text(s) = self { s } else { "" }
    }

    /// The text, `None` for NULL.
    pub fn opt_text(&self) -> Option<&str> {
        if let Val::Text(s) = self { Some(s) } else { None }
    }
}

impl From<i64> for Val {
    fn from(i: i64) -> Self {
        Val::Int(i)
    }
}
impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Text(s.to_string())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Text(s)
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `sqlite:PATH`.
    Sqlite(String),
    /// `postgres://...` or `postgresql://...`.
    Postgres(String),
}

impl std::str::FromStr for DbUrl {
    type Err = FleetError;
    fn from_str(s: &str) -> Result<Self, FleetError> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(FleetError::BadRequest(
                    "--db sqlite: needs a file path (sqlite:/var/lib/devmig/fleet.db)".into(),
                ));
            }
            Ok(DbUrl::Sqlite(path.to_string()))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(DbUrl::Postgres(s.to_string()))
        } else {
            Err(FleetError::BadRequest(format!("--db {s:?}: expected sqlite:PATH or postgres://USER@HOST/DB")))
        }
    }
}

/// One connection.
pub enum Conn {
    /// SQLite (WAL, busy timeout).
    Sqlite(rusqlite::Connection),
    /// PostgreSQL, through the thread that owns the client.
    Postgres(PgWorker),
}

/// One job for a PostgreSQL connection's thread.
enum PgJob {
    Exec(String, Vec<Val>, mpsc::Sender<Result<u64, FleetError>>),
    Query(String, Vec<Val>, mpsc::Sender<Result<Vec<Vec<Val>>, FleetError>>),
    Batch(String, mpsc::Sender<Result<(), FleetError>>),
}

/// A PostgreSQL connection owned by its own thread. The synchronous client runs a private
/// runtime: creating, using or dropping it on a tokio thread would panic, so none of that
/// ever happens outside this thread. Statements are prepared once per connection.
pub struct PgWorker {
    jobs: mpsc::Sender<PgJob>,
}

fn pg_params(params: &[Val]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)).collect()
}

fn pg_rows(rows: Vec<postgres::Row>) -> Result<Vec<Vec<Val>>, FleetError> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut r = Vec::with_capacity(row.len());
        for (i, col) in row.columns().iter().enumerate() {
            let t = col.type_();
            r.push(if *t == Type::INT8 {
                row.try_get::<_, Option<i64>>(i).map_err(pg_err)?.map_or(Val::Null, Val::Int)
            } else if *t == Type::INT4 {
                row.try_get::<_, Option<i32>>(i).map_err(pg_err)?.map_or(Val::Null, |v| Val::Int(v.into()))
            } else {
                row.try_get::<_, Option<String>>(i).map_err(pg_err)?.map_or(Val::Null, Val::Text)
            });
        }
        out.push(r);
    }
    Ok(out)
}

impl PgWorker {
    fn connect(url: &str) -> Result<PgWorker, FleetError> {
        let (jobs, rx) = mpsc::channel::<PgJob>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let url = url.to_string();
        std::thread::Builder::new()
            .name("devmig-pg".into())
            .spawn(move || {
                // Step-a statements are prepared once per requirement shape; a generic plan
                // spares the planner (milliseconds for six-way joins) on every later call. Step a
                // wants index probes that stop at LIMIT: a hash join would first hash every
                // device with a common attribute (50,000 rows at 100,000 hosts: 40 ms instead of 1).
                let settings =
                    "SET plan_cache_mode = force_generic_plan; SET enable_hashjoin = off; SET enable_mergejoin = off";
                let connected = postgres::Client::connect(&url, postgres::NoTls)
                    .and_then(|mut c| c.batch_execute(settings).map(|()| c));
                let mut client = match connected {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(pg_err(e)));
                        return;
                    }
                };
                let mut prepared: HashMap<String, postgres::Statement> = HashMap::new();
                let mut statement =
                    |client: &mut postgres::Client, sql: &str| -> Result<postgres::Statement, FleetError> {
                        if let Some(st) = prepared.get(sql) {
                            return Ok(st.clone());
                        }
                        let st = client.prepare(sql).map_err(pg_err)?;
                        if prepared.len() < 256 {
                            prepared.insert(sql.to_string(), st.clone());
                        }
                        Ok(st)
                    };
                for job in rx {
                    match job {
                        PgJob::Exec(sql, params, reply) => {
                            let r = statement(&mut client, &sql)
                                .and_then(|st| client.execute(&st, &pg_params(&params)).map_err(pg_err));
                            let _ = reply.send(r);
                        }
                        PgJob::Query(sql, params, reply) => {
                            let r = statement(&mut client, &sql)
                                .and_then(|st| client.query(&st, &pg_params(&params)).map_err(pg_err))
                                .and_then(pg_rows);
                            let _ = reply.send(r);
                        }
                        PgJob::Batch(sql, reply) => {
                            let _ = reply.send(client.batch_execute(&sql).map_err(pg_err));
                        }
                    }
                }
            })
            .map_err(|e| FleetError::db_from("starting a connection thread", e))?;
        ready_rx.recv().map_err(|_| FleetError::db("the connection thread died"))??;
        Ok(PgWorker { jobs })
    }

    fn ask<R>(&self, make: impl FnOnce(mpsc::Sender<Result<R, FleetError>>) -> PgJob) -> Result<R, FleetError> {
        let (tx, rx) = mpsc::channel();
        self.jobs.send(make(tx)).map_err(|_| FleetError::db("the connection thread is gone"))?;
        rx.recv().map_err(|_| FleetError::db("the connection thread is gone"))?
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Sqlite(_) => "Conn::Sqlite",
            Conn::Postgres(_) => "Conn::Postgres",
        })
    }
}

fn sqlite_err(e: rusqlite::Error) -> FleetError {
    FleetError::db_from("SQLite", e)
}

fn pg_err(e: postgres::Error) -> FleetError {
    let what = match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}", db.code().code()),
        None => "PostgreSQL".to_string(),
    };
    FleetError::db_from(what, e)
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

impl postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Int(i) => i.to_sql(ty, out),
            Val::Text(s) => s.as_str().to_sql(ty, out),
            Val::Null => Ok(postgres::types::IsNull::Yes),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        use postgres::types::Type;
        [Type::INT8, Type::TEXT, Type::VARCHAR].contains(ty)
    }

    postgres::types::to_sql_checked!();
}

/// SQLite reads `$1` as a *named* parameter numbered by first appearance; `?1` is positional,
/// as `$1` is in PostgreSQL. Statements are written once, PostgreSQL style.
fn sqlite_text(sql: &str) -> std::borrow::Cow<'_, str> {
    if sql.contains('$') { std::borrow::Cow::Owned(sql.replace('$', "?")) } else { std::borrow::Cow::Borrowed(sql) }
}

impl Conn {
    /// Runs a statement; returns rows changed.
    pub fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, FleetError> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(&sqlite_text(sql)).map_err(sqlite_err)?;
                let n = st.execute(rusqlite::params_from_iter(params.iter())).map_err(sqlite_err)?;
                Ok(n as u64)
            }
            Conn::Postgres(w) => w.ask(|tx| PgJob::Exec(sql.to_string(), params.to_vec(), tx)),
        }
    }

    /// Runs a query; every column comes back as a [`Val`].
    pub fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, FleetError> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(&sqlite_text(sql)).map_err(sqlite_err)?;
                let n = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(params.iter())).map_err(sqlite_err)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(sqlite_err)? {
                    let mut r = Vec::with_capacity(n);
                    for i in 0..n {
                        r.push(match row.get_ref(i).map_err(sqlite_err)? {
                            rusqlite::types::ValueRef::Integer(v) => Val::Int(v),
                            rusqlite::types::ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                            rusqlite::types::ValueRef::Null => Val::Null,
                            other => {
                                return Err(FleetError::db(format!("unexpected column type {:?}", other.data_type())));
                            }
                        });
                    }
                    out.push(r);
                }
                Ok(out)
            }
            Conn::Postgres(w) => w.ask(|tx| PgJob::Query(sql.to_string(), params.to_vec(), tx)),
        }
    }

    /// Runs several `;`-separated statements without parameters.
    pub fn batch(&mut self, sql: &str) -> Result<(), FleetError> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(sqlite_err),
            Conn::Postgres(w) => w.ask(|tx| PgJob::Batch(sql.to_string(), tx)),
        }
    }

    /// Which dialect this is.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }

    /// Runs `f` in a transaction (SQLite: `BEGIN IMMEDIATE`, so writers queue instead of
    /// failing on upgrade); rolls back on error.
    pub fn transaction<R>(&mut self, f: impl FnOnce(&mut Conn) -> Result<R, FleetError>) -> Result<R, FleetError> {
        self.batch(if self.is_postgres() { "BEGIN" } else { "BEGIN IMMEDIATE" })?;
        match f(self) {
            Ok(r) => {
                self.batch("COMMIT")?;
                Ok(r)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// A small fixed pool of connections to one database.
#[derive(Debug)]
pub struct Pool {
    conns: Vec<Mutex<Conn>>,
    url: DbUrl,
    next: std::sync::atomic::AtomicUsize,
}

impl Pool {
    /// Opens `size` connections; with `create`, a missing SQLite file (and its directory) is
    /// created, else it is an error naming the path.
    pub fn open(url: &DbUrl, size: usize, create: bool) -> Result<Pool, FleetError> {
        let mut conns = Vec::new();
        for i in 0..size.max(1) {
            conns.push(Mutex::new(match url {
                DbUrl::Sqlite(path) => {
                    let c = if create {
                        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
                            std::fs::create_dir_all(dir)
                                .map_err(|e| FleetError::db_from(format!("creating {}", dir.display()), e))?;
                        }
                        rusqlite::Connection::open(path)
                    } else if !Path::new(path).is_file() {
                        return Err(FleetError::NotFound(format!(
                            "no fleet database at {path} (`devmig fleet serve --db sqlite:{path}` creates it)"
                        )));
                    } else {
                        use rusqlite::OpenFlags as F;
                        rusqlite::Connection::open_with_flags(
                            path,
                            F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_URI | F::SQLITE_OPEN_NO_MUTEX,
                        )
                    }
                    .map_err(|e| FleetError::db_from(format!("opening {path}"), e))?;
                    // Once per file, before any pragma writes to it: a file without devmig's schema
                    // stays untouched.
                    if !create && i == 0 && !crate::schema::present_sqlite(&c)? {
                        return Err(crate::schema::no_fleet(path));
                    }
                    c.busy_timeout(Duration::from_secs(10)).map_err(sqlite_err)?;
                    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16000;")
                        .map_err(sqlite_err)?;
                    c.set_prepared_statement_cache_capacity(64);
                    Conn::Sqlite(c)
                }
                DbUrl::Postgres(u) => Conn::Postgres(PgWorker::connect(u)?),
            }));
        }
        Ok(Pool { conns, url: url.clone(), next: std::sync::atomic::AtomicUsize::new(0) })
    }

    /// The connection for writes. SQLite has one writer at a time: writers queue on the first
    /// connection's lock here (fair, no sleeping busy handler); readers use the others.
    pub fn writer(&self) -> MutexGuard<'_, Conn> {
        match self.url {
            DbUrl::Sqlite(_) => self.conns[0].lock(),
            DbUrl::Postgres(_) => self.get(),
        }
    }

    /// A free connection, or waits for one (taking turns, so waiters spread over the pool).
    /// With SQLite and more than one connection, the writer's is left to writers.
    pub fn get(&self) -> MutexGuard<'_, Conn> {
        let skip = usize::from(matches!(self.url, DbUrl::Sqlite(_)) && self.conns.len() > 1);
        for c in &self.conns[skip..] {
            if let Some(g) = c.try_lock() {
                return g;
            }
        }
        let n = self.conns.len() - skip;
        let turn = skip + self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        self.conns[turn].lock()
    }
}
