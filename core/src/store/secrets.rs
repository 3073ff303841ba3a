//! The `secrets` table: the device identity, team keys and pending invites, each sealed under
//! the at-rest key with its name bound as associated data.

use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::{Reader, Writer};
use crate::crypto::Purpose;
use crate::error::Result;

reads! {
    /// A sealed secret, opened.
    pub(crate) fn secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let body: Option<Vec<u8>> = self
            .conn()
            .query_row("SELECT body FROM secrets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        body.map(|b| {
            self.sealer
                .open(Purpose::Secret, 0, name.as_bytes(), &b, || {
                    format!("secret {name}")
                })
        })
        .transpose()
    }

    /// Sealed secrets whose name starts with `prefix`, opened.
    pub(crate) fn secrets_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT name, body FROM secrets WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name")?;
        let rows = stmt
            .query_map([prefix], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(name, body)| {
                let plain = self.sealer.open(Purpose::Secret, 0, name.as_bytes(), &body, || format!("secret {name}"))?;
                Ok((name, plain))
            })
            .collect()
    }
}

impl Writer<'_> {
    /// Stores a secret, sealed.
    pub(crate) fn put_secret(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let sealed = self
            .sealer
            .seal(Purpose::Secret, 0, name.as_bytes(), value)?;
        self.tx.execute(
            "INSERT INTO secrets (name, body) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            params![name, sealed],
        )?;
        Ok(())
    }

    /// Deletes a secret.
    pub(crate) fn delete_secret(&mut self, name: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM secrets WHERE name = ?1", [name])?;
        Ok(())
    }
}
