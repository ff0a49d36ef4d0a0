/** The example request of the API contract (shared/seed/event-ingestion.md §2.1), verbatim. */
export const SEED_EVENT = {
  source: 'brand.pos',
  externalEventId: 'txn_987654321',
  eventType: 'purchase_completed',
  occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: 'L-123456789', email: 'customer@example.com' },
  properties: { order_id: 'order_42', amount: 120.50, currency: 'USD', store_id: 'store_42' },
}
