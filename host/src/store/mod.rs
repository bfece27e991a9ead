//! Storage, as the host sees it: the `cromflag-store` crate (the `Backend`
//! trait, the embedded and griddb backends; the WebAPI wire format is
//! `cromflag-griddb-webapi`'s). The host side of `cromflag:iot/store` is
//! `runtime::store_import`.

pub use cromflag_store::*;

/// Rows `all_rows` reads per query.
const ALL_ROWS_PAGE: usize = 1000;

/// Every row of `container` that `clause` selects (TQL: an optional `WHERE
/// …`, then an `ORDER BY …` that orders rows uniquely), a page at a time;
/// none if the container does not exist. For the host's own collections.
pub async fn all_rows(
    backend: &dyn Backend,
    container: &str,
    clause: &str,
) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::new();
    if backend.get_container(container).await?.is_none() {
        return Ok(rows);
    }
    for offset in (0..).step_by(ALL_ROWS_PAGE) {
        let tql = format!("SELECT * {clause} LIMIT {ALL_ROWS_PAGE} OFFSET {offset}");
        let page = backend.query(container, &tql).await?;
        let last = page.rows.len() < ALL_ROWS_PAGE;
        rows.extend(page.rows);
        if last {
            break;
        }
    }
    Ok(rows)
}

/// Makes `wanted` the container of its name: created if missing, put again
/// if its schema differs (a column added since), left alone if it is so
/// already. For the host's own collections, before each write.
pub async fn ensure_container(
    backend: &dyn Backend,
    wanted: ContainerInfo,
) -> Result<(), StoreError> {
    if backend.get_container(&wanted.name).await?.as_ref() != Some(&wanted) {
        backend.put_container(wanted).await?;
    }
    Ok(())
}
