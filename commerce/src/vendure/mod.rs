//! Vendure's GraphQL Shop API (see `docs/commerce-vendure.md`).
