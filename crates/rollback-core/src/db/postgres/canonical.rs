//! PostgreSQL's state as text, for comparing two states: the canonical dump (every fact one
//! line, every row) and the digest dump the fingerprint hashes (every row folded into its
//! table's count and digest by the server). Schema, rows, sequences, large objects, and what
//! a restore re-creates outside the schemas (publications, foreign servers, casts).

use tokio_postgres::Client;

use super::{Ctx, USER_SCHEMA, rows, user_made};
use crate::db::Result;

/// Whether the session may read large object `l` (`pg_largeobject_metadata l`): what `lo_get`
/// checks (PostgreSQL 17's `has_largeobject_privilege`, spelled out for older servers): checks
/// turned off (`lo_compat_privileges`), a superuser, the privileges of its owner, or `SELECT`
/// granted to `PUBLIC` or to a role whose privileges the session has.
const LO_READABLE: &str = "(current_setting('lo_compat_privileges')::bool
    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    OR pg_has_role(l.lomowner, 'USAGE')
    OR EXISTS (SELECT 1 FROM aclexplode(l.lomacl) a
                WHERE a.privilege_type = 'SELECT'
                  AND CASE WHEN a.grantee = 0 THEN true ELSE pg_has_role(a.grantee, 'USAGE') END))";

/// The MD5 of large object `l`'s content, read 1 MiB at a time (`lo_get` of a whole object
/// fails beyond 1 GB, and large objects are where apps keep what is bigger): the MD5 of the
/// chunks' MD5s, in order. The recursion stops after the first chunk shorter than 1 MiB.
const LO_CONTENT: &str = "(WITH RECURSIVE c(off, h, more) AS (
        SELECT 0::bigint, md5(x), length(x) = 1048576 FROM lo_get(l.oid, 0, 1048576) x
        UNION ALL
        SELECT c.off + 1048576, md5(x), length(x) = 1048576 FROM c, lo_get(l.oid, c.off + 1048576, 1048576) x WHERE c.more)
    SELECT md5(string_agg(h, '' ORDER BY off)) FROM c)";

/// One large object as text: its oid, owner, privileges, and its [`LO_CONTENT`] (`-` when the
/// session may not read it: then a change of its content does not show).
fn lo_line() -> String {
    format!(
        "l.oid::text || ' owner=' || l.lomowner::regrole::text || ' acl=' || coalesce(l.lomacl::text, '-')
        || ' content=' || CASE WHEN l.readable THEN {LO_CONTENT} ELSE '-' END"
    )
}

/// The large objects (`lo_create`, `lo_put`, `lowrite`: data an app writes outside any table,
/// which the snapshot's `pg_dump` holds): one line each in the canonical dump; in the digest
/// dump their count, the sum of a 64-bit hash of each one's line, and how many the session
/// may not read, computed by the server in one pass. A large object written in place (no row
/// changes) then changes the fingerprint, so the undo keeps it instead of restoring the
/// snapshot over it.
async fn large_objects(ctx: &Ctx<'_>, client: &Client, digest: bool) -> Result<Vec<String>> {
    let from = format!("(SELECT l.*, {LO_READABLE} AS readable FROM pg_largeobject_metadata l) l");
    let line = lo_line();
    if digest {
        let sql = format!(
            "SELECT count(*), coalesce(sum(hashtextextended({line}, 0)::numeric), 0), count(*) FILTER (WHERE NOT l.readable)
               FROM {from}"
        );
        let r = query(ctx, client, &sql).await?;
        let r = r.first().cloned().unwrap_or_default();
        let field = |i: usize| r.get(i).map_or("?", String::as_str);
        // Without any, the line is the one fingerprints recorded before content counted, so
        // that a run recorded then is still seen as unchanged by its undo.
        if field(0) == "0" {
            return Ok(vec!["large_objects 0".to_owned()]);
        }
        return Ok(vec![format!("large_objects {} digest {} unreadable {}", field(0), field(1), field(2))]);
    }
    let r = query(ctx, client, &format!("SELECT {line} FROM {from}")).await?;
    let mut lines = vec![format!("large_objects {}", r.len())];
    lines.extend(r.into_iter().map(|row| format!("large_object {}", row[0])));
    Ok(lines)
}

/// Foreign-data wrappers, foreign servers, casts and access methods that a user made
/// ([`user_made`]): what the restore drops outside the schemas besides publications, a line
/// each (user mappings are not read: their options hold passwords).
fn not_from_extensions() -> String {
    format!(
        "SELECT 'foreign_data_wrapper ' || w.fdwname || ' owner=' || w.fdwowner::regrole::text
                || ' handler=' || w.fdwhandler::regproc::text || ' validator=' || w.fdwvalidator::regproc::text
                || ' options=' || coalesce(w.fdwoptions::text, '-')
           FROM pg_foreign_data_wrapper w WHERE {}
         UNION ALL
         SELECT 'foreign_server ' || s.srvname || ' wrapper=' || w.fdwname || ' owner=' || s.srvowner::regrole::text
                || ' type=' || coalesce(s.srvtype, '-') || ' version=' || coalesce(s.srvversion, '-')
                || ' options=' || coalesce(s.srvoptions::text, '-')
           FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE {}
         UNION ALL
         SELECT 'cast ' || c.castsource::regtype::text || ' as ' || c.casttarget::regtype::text
                || ' function=' || c.castfunc::regprocedure::text || ' context=' || c.castcontext::text
                || ' method=' || c.castmethod::text
           FROM pg_cast c WHERE {}
         UNION ALL
         SELECT 'access_method ' || a.amname || ' type=' || a.amtype::text || ' handler=' || a.amhandler::regproc::text
           FROM pg_am a WHERE {}",
        user_made("pg_foreign_data_wrapper", "w"),
        user_made("pg_foreign_server", "s"),
        user_made("pg_cast", "c"),
        user_made("pg_am", "a"),
    )
}

/// What lives outside the schemas and the restore drops and re-creates from the dump: the
/// logical-replication publications (PostgreSQL 10 and later: name, owner, what each
/// publishes, its tables with PostgreSQL 15's column lists and row filters), and the
/// [`not_from_extensions`]. One created, changed or dropped while rolled back changes the
/// fingerprint, so the undo keeps it instead of restoring over it. None gives no line, as
/// before they were read.
async fn outside_schemas(ctx: &Ctx<'_>, client: &Client) -> Result<Vec<String>> {
    let mut lines: Vec<String> =
        query(ctx, client, &not_from_extensions()).await?.into_iter().filter_map(|r| r.into_iter().next()).collect();
    if ctx.server_version(client).await?.0 < 100_000 {
        return Ok(lines);
    }
    let r = query(
        ctx,
        client,
        "SELECT p.pubname, p.pubowner::regrole::text, (to_jsonb(p) - 'oid' - 'pubname' - 'pubowner')::text,
                      (SELECT string_agg((to_jsonb(t) - 'pubname')::text, ',' ORDER BY t.schemaname, t.tablename)
                         FROM pg_publication_tables t WHERE t.pubname = p.pubname)
                 FROM pg_publication p",
    )
    .await?;
    lines.extend(r.into_iter().map(|r| format!("publication {} owner={} {} tables={}", r[0], r[1], r[2], r[3])));
    Ok(lines)
}

/// Every row of `sql`, each as its columns' text; errors as the database's.
async fn query(ctx: &Ctx<'_>, client: &Client, sql: &str) -> Result<Vec<Vec<String>>> {
    rows(client, sql).await.map_err(|e| ctx.query_err(&e))
}

fn qi(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Schema and rows, one fact per line, sorted: equal text means equal states (object ids,
/// physical order and dropped-column slots do not show).
pub(crate) async fn canonical_dump(ctx: &Ctx<'_>, client: &Client) -> Result<String> {
    dump_with(ctx, client, false).await
}

/// The schema as [`canonical_dump`] has it, each table's rows as their count and an
/// order-independent digest (the sum of a 64-bit hash of every row, computed by the server in
/// one pass): the same on equal states, different once a row is added, removed or changed,
/// and cheap in memory however big the tables.
pub(crate) async fn digest_dump(ctx: &Ctx<'_>, client: &Client) -> Result<String> {
    dump_with(ctx, client, true).await
}

async fn dump_with(ctx: &Ctx<'_>, client: &Client, digest: bool) -> Result<String> {
    let q = |sql: String| async move { query(ctx, client, &sql).await };
    let user = |alias: &str| USER_SCHEMA.replace("nspname", &format!("{alias}.nspname"));
    let mut lines = Vec::new();
    for r in q(format!("SELECT n.nspname, n.nspowner::regrole::text FROM pg_namespace n WHERE {}", user("n"))).await? {
        lines.push(format!("schema {} owner={}", r[0], r[1]));
    }
    for r in
        q("SELECT e.extname, e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            .into())
        .await?
    {
        lines.push(format!("extension {} {} in {}", r[0], r[1], r[2]));
    }
    let rels = q(format!(
        "SELECT n.nspname, c.relname, c.relkind::text, c.relowner::regrole::text,
                CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {}",
        user("n")
    ))
    .await?;
    for r in &rels {
        let name = format!("{}.{}", r[0], r[1]);
        lines.push(format!("relation {name} kind={} owner={}", r[2], r[3]));
        if r[2] == "v" || r[2] == "m" {
            lines.push(format!("relation {name} definition {:?}", r[4]));
        }
    }
    for r in q(format!(
        "SELECT n.nspname, c.relname, lpad(a.attnum::text, 5, '0'), a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {}",
        user("n")
    ))
    .await?
    {
        // The position among live columns, not attnum (dropped columns leave gaps).
        lines.push(format!(
            "relation {}.{} column {:0>5} {} {} notnull={} default={} identity={} generated={}",
            r[0], r[1], r[9], r[3], r[4], r[5], r[6], r[7], r[8]
        ));
    }
    for r in q(format!(
        "SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid)
           FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE {}",
        user("n")
    ))
    .await?
    {
        lines.push(format!("relation {}.{} constraint {} {}", r[0], r[1], r[2], r[3]));
    }
    for r in q(format!(
        "SELECT n.nspname, c.relname, pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE {}",
        user("n")
    ))
    .await?
    {
        lines.push(format!("relation {}.{} index {}", r[0], r[1], r[2]));
    }
    for r in q(format!(
        "SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid)
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE NOT t.tgisinternal AND {}",
        user("n")
    ))
    .await?
    {
        lines.push(format!("relation {}.{} trigger {} {}", r[0], r[1], r[2], r[3]));
    }
    for r in q(format!(
        "SELECT schemaname, sequencename, data_type::text, start_value, increment_by, min_value, max_value, cycle, last_value
           FROM pg_sequences WHERE {}",
        USER_SCHEMA.replace("nspname", "schemaname")
    ))
    .await?
    {
        lines.push(format!(
            "sequence {}.{} {} start={} increment={} min={} max={} cycle={} last={}",
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]
        ));
    }
    for r in q(format!(
        "SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE p.prokind IN ('f', 'p') AND {}",
        user("n")
    ))
    .await?
    {
        lines.push(format!("function {}.{}({}) {:?}", r[0], r[1], r[2], r[3]));
    }
    for r in q(format!(
        "SELECT n.nspname, t.typname, t.typtype::text, format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
                (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
          WHERE t.typtype IN ('e', 'd') AND {}",
        user("n")
    ))
    .await?
    {
        lines.push(format!("type {}.{} kind={} base={} notnull={} default={} labels={}", r[0], r[1], r[2], r[3], r[4], r[5], r[6]));
    }
    for r in rels.iter().filter(|r| r[2] == "r" || r[2] == "m") {
        let name = format!("{}.{}", r[0], r[1]);
        if digest {
            let d = q(format!(
                "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) FROM ONLY {}.{} t",
                qi(&r[0]),
                qi(&r[1])
            ))
            .await?;
            let d = d.first().cloned().unwrap_or_default();
            let field = |i: usize| d.get(i).map_or("?", String::as_str);
            lines.push(format!("relation {name} rows {:0>12} digest {}", field(0), field(1)));
            continue;
        }
        let data = q(format!("SELECT t::text FROM ONLY {}.{} t", qi(&r[0]), qi(&r[1]))).await?;
        lines.push(format!("relation {name} rows {:0>12}", data.len()));
        for row in data {
            lines.push(format!("relation {name} row {:?}", row[0]));
        }
    }
    lines.extend(large_objects(ctx, client, digest).await?);
    lines.extend(outside_schemas(ctx, client).await?);
    lines.sort();
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}
