//! The catalog: which containers exist, their schemas, and where their rows are.
//!
//! It is the `_cromflag_containers` table of the layout
//! ([`cromflag_tql::layout`]). In memory only the containers in use are kept,
//! in a [`Cache`] of bounded size, so opening a store reads none of it and
//! memory does not grow with the fleet: a container not in the cache is read
//! by name, with its index, when it is first asked for.
//!
//! Only the writer thread changes the catalog, inside its transaction, and
//! through [`Pending`], which holds the changes until the commit decides
//! their fate; then [`Cache::apply`] publishes them.

use crate::{
    added_columns, ContainerInfo, ContainerKind, ContainerListing, ContainerPage, StoreError,
};
pub use cromflag_tql::layout::Entry;
use cromflag_tql::layout::{self, Storage, SERIES_TABLE};
use hashlink::LruCache;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn db_err(e: rusqlite::Error) -> StoreError {
    super::writer::write_error(e)
}

/// Container names are case-insensitive (as in GridDB): the cache's key.
fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// The containers in use, most recently used kept, by lower-cased name.
pub struct Cache {
    inner: Mutex<Hot>,
}

struct Hot {
    entries: LruCache<String, Arc<Entry>>,
    /// Bumped by every committed change, so that a reader that looked a
    /// container up before it does not cache what it read.
    generation: u64,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            inner: Mutex::new(Hot {
                entries: LruCache::new(capacity),
                generation: 0,
            }),
        }
    }

    fn hot(&self) -> std::sync::MutexGuard<'_, Hot> {
        self.inner.lock().expect("catalog cache lock")
    }

    /// The container if it is in the cache.
    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.hot().entries.get(&key(name)).cloned()
    }

    /// The container, from the cache or else read on `conn`, which sees only
    /// committed data (a reader's connection). What was read is cached unless
    /// the writer committed a change meanwhile.
    pub fn load(&self, conn: &Connection, name: &str) -> Result<Option<Arc<Entry>>, StoreError> {
        let generation = {
            let mut hot = self.hot();
            if let Some(entry) = hot.entries.get(&key(name)) {
                return Ok(Some(entry.clone()));
            }
            hot.generation
        };
        let Some(entry) = read(conn, name)? else {
            return Ok(None);
        };
        let entry = Arc::new(entry);
        let mut hot = self.hot();
        if hot.generation == generation {
            hot.entries.insert(key(name), entry.clone());
        }
        Ok(Some(entry))
    }

    /// Publishes the changes of a committed group: new and changed
    /// containers replace what was cached, dropped ones leave.
    pub fn apply(&self, changes: HashMap<String, Option<Arc<Entry>>>) {
        if changes.is_empty() {
            return;
        }
        let mut hot = self.hot();
        hot.generation += 1;
        for (name, change) in changes {
            match change {
                Some(entry) => hot.entries.insert(name, entry),
                None => hot.entries.remove(&name),
            };
        }
    }

    /// Caches what the writer read of the committed catalog.
    fn remember(&self, entry: Arc<Entry>) {
        self.hot().entries.insert(key(&entry.info.name), entry);
    }
}

/// The catalog entry named `name` (in any case), as `conn` sees it.
pub fn read(conn: &Connection, name: &str) -> Result<Option<Entry>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, name, kind, row_key, columns FROM _cromflag_containers WHERE name = ?1",
        )
        .map_err(db_err)?;
    let row = stmt
        .query_row([name], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .optional()
        .map_err(db_err)?;
    let Some((id, name, kind, row_key, columns)) = row else {
        return Ok(None);
    };
    let corrupt = |what: &str| StoreError::Backend(format!("catalog entry `{name}`: bad {what}"));
    let (kind, columns) = layout::read_catalog_entry(&kind, &columns).map_err(corrupt)?;
    let info = ContainerInfo {
        name,
        kind,
        columns,
        row_key,
    };
    Ok(Some(Entry::new(id, info)))
}

/// A page of container names, in plain string (byte) order as GridDB's
/// WebAPI lists them (the `_by_name` index's order), and how many there are
/// of the listing's kind.
pub fn list(conn: &Connection, listing: &ContainerListing) -> Result<ContainerPage, StoreError> {
    let kind = listing.kind.map(ContainerKind::name);
    let order = if listing.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT name FROM _cromflag_containers WHERE ?1 IS NULL OR kind = ?1 \
         ORDER BY name COLLATE BINARY {order} LIMIT ?2 OFFSET ?3"
    );
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let names = stmt
        .query_map((kind, clamp(listing.limit), clamp(listing.offset)), |row| {
            row.get(0)
        })
        .map_err(db_err)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(db_err)?;
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM _cromflag_containers WHERE ?1 IS NULL OR kind = ?1")
        .map_err(db_err)?
        .query_row([kind], |row| row.get(0))
        .map_err(db_err)?;
    Ok(ContainerPage {
        names,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// The writer's catalog during one group commit: the changes its jobs made,
/// uncommitted, over the cache and the table.
pub struct Pending<'a> {
    cache: &'a Cache,
    /// By lower-cased name: the entry as changed, or `None` once dropped.
    changes: HashMap<String, Option<Arc<Entry>>>,
}

impl<'a> Pending<'a> {
    pub fn new(cache: &'a Cache) -> Pending<'a> {
        Pending {
            cache,
            changes: HashMap::new(),
        }
    }

    /// The changes so far, to restore if the next job fails.
    pub fn mark(&self) -> HashMap<String, Option<Arc<Entry>>> {
        self.changes.clone()
    }

    /// Forgets the changes made since `mark`, whose job was rolled back.
    pub fn restore(&mut self, mark: HashMap<String, Option<Arc<Entry>>>) {
        self.changes = mark;
    }

    /// The changes, for the cache once committed.
    pub fn into_changes(self) -> HashMap<String, Option<Arc<Entry>>> {
        self.changes
    }

    /// The container as this group sees it: its own changes first, then the
    /// cache, then the table (which then holds committed data only).
    pub fn get(&self, conn: &Connection, name: &str) -> Result<Option<Arc<Entry>>, StoreError> {
        if let Some(change) = self.changes.get(&key(name)) {
            return Ok(change.clone());
        }
        if let Some(entry) = self.cache.get(name) {
            return Ok(Some(entry));
        }
        let Some(entry) = read(conn, name)? else {
            return Ok(None);
        };
        let entry = Arc::new(entry);
        self.cache.remember(entry.clone());
        Ok(Some(entry))
    }

    fn record(&mut self, entry: Entry) -> ContainerInfo {
        let info = entry.info.clone();
        self.changes
            .insert(key(&entry.info.name), Some(Arc::new(entry)));
        info
    }

    /// `put-container`: creates the container, or checks the schema and adds
    /// the missing columns.
    pub fn put(
        &mut self,
        conn: &Connection,
        info: ContainerInfo,
    ) -> Result<ContainerInfo, StoreError> {
        let Some(existing) = self.get(conn, &info.name)? else {
            return self.create(conn, info);
        };
        let stored = &existing.info;
        let added = added_columns(stored, &info)?;
        if added.is_empty() {
            return Ok(stored.clone());
        }
        let mut columns = stored.columns.clone();
        columns.extend(added);
        match existing.storage {
            // The shared table may already be wide enough: other devices'
            // cells there are theirs, and this device's rows have NULL.
            Storage::Series { .. } => widen_series(conn, columns.len())?,
            Storage::Table { id } => {
                for (index, column) in columns.iter().enumerate().skip(stored.columns.len()) {
                    let ddl = layout::add_collection_column_ddl(id, index, column.column_type);
                    conn.execute(&ddl, []).map_err(db_err)?;
                }
            }
        }
        conn.execute(
            "UPDATE _cromflag_containers SET columns = ?1 WHERE id = ?2",
            (layout::columns_json(&columns), existing.id),
        )
        .map_err(db_err)?;
        let info = ContainerInfo {
            columns,
            ..stored.clone()
        };
        Ok(self.record(Entry::new(existing.id, info)))
    }

    /// Drops the container and its rows; says whether it existed.
    pub fn drop(&mut self, conn: &Connection, name: &str) -> Result<bool, StoreError> {
        let Some(existing) = self.get(conn, name)? else {
            return Ok(false);
        };
        let own_id = existing.storage.shared_by();
        conn.execute(&existing.storage.drop_sql(), params_from_iter(own_id))
            .map_err(db_err)?;
        conn.execute(
            "DELETE FROM _cromflag_containers WHERE id = ?1",
            [existing.id],
        )
        .map_err(db_err)?;
        self.changes.insert(key(name), None);
        Ok(true)
    }

    /// A new container: a catalog row, and for a time series no DDL unless
    /// it is wider than every one before it.
    fn create(
        &mut self,
        conn: &Connection,
        info: ContainerInfo,
    ) -> Result<ContainerInfo, StoreError> {
        cromflag_model::check_new_container(&info)?;
        conn.execute(
            "INSERT INTO _cromflag_containers (name, kind, row_key, columns) VALUES (?1, ?2, ?3, ?4)",
            (&info.name, info.kind.name(), info.row_key, layout::columns_json(&info.columns)),
        )
        .map_err(db_err)?;
        let entry = Entry::new(conn.last_insert_rowid(), info);
        match entry.storage {
            Storage::Series { .. } => widen_series(conn, entry.info.columns.len())?,
            Storage::Table { id } => {
                conn.execute(&layout::collection_ddl(id, &entry.info), [])
                    .map_err(db_err)?;
            }
        }
        Ok(self.record(entry))
    }
}

/// How many container columns (`c0`, `c1`, …) the shared series table has.
pub fn series_width(conn: &Connection) -> Result<usize, StoreError> {
    let columns: i64 = conn
        .query_row(
            &format!("SELECT COUNT(*) FROM pragma_table_info('{SERIES_TABLE}')"),
            [],
            |row| row.get(0),
        )
        .map_err(db_err)?;
    // Less the `container` column.
    Ok(usize::try_from(columns - 1).unwrap_or(0))
}

/// Adds columns to the shared series table until it holds `width` of them.
pub fn widen_series(conn: &Connection, width: usize) -> Result<(), StoreError> {
    for index in series_width(conn)?..width {
        conn.execute(&layout::add_series_column_ddl(index), [])
            .map_err(db_err)?;
    }
    Ok(())
}
