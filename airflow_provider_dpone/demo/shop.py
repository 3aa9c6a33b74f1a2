"""Generate and mutate the demo shop database (customers and orders)."""

from __future__ import annotations

import psycopg

SCHEMA = """
create table if not exists customers (
  id bigint primary key, name text not null, email text, created_at timestamptz not null default now()
);
create table if not exists orders (
  id bigint primary key,
  customer_id bigint not null,
  amount numeric(12,2) not null,
  status text not null,
  items jsonb,
  updated_at timestamptz not null default now()
);
create index if not exists orders_updated_at on orders (updated_at);
"""


def create_shop(uri: str, customers: int = 1_000, orders: int = 100_000) -> None:
    with psycopg.connect(uri) as conn:
        conn.execute(SCHEMA)
        conn.execute("truncate customers, orders")
        conn.execute(
            "insert into customers select g, 'customer ' || g, 'c' || g || '@example.com', now() "
            "from generate_series(1, %s) g",
            (customers,),
        )
        conn.execute(
            "insert into orders select g, 1 + g %% %s, round((random() * 500)::numeric, 2), "
            "(array['new','paid','shipped'])[1 + g %% 3], jsonb_build_object('sku', g %% 97, 'qty', 1 + g %% 5), "
            "now() - interval '30 days' + g * interval '20 seconds' / greatest(1, %s / 100000.0) "
            "from generate_series(1, %s) g",
            (customers, orders, orders),
        )


def change_orders(uri: str, fraction: float = 0.01, new_rows: int = 500) -> tuple[int, int]:
    """Update ``fraction`` of the orders and insert ``new_rows``; returns (updated, inserted)."""
    with psycopg.connect(uri) as conn:
        updated = conn.execute(
            "update orders set status = 'refunded', updated_at = now() where id %% %s = 0",
            (max(1, round(1 / fraction)),),
        ).rowcount
        (start,) = conn.execute("select coalesce(max(id), 0) from orders").fetchone() or (0,)
        inserted = conn.execute(
            "insert into orders select g, 1, 9.99, 'new', '{}'::jsonb, now() "
            "from generate_series(%s::bigint + 1, %s::bigint + %s) g",
            (start, start, new_rows),
        ).rowcount
    return updated, inserted
