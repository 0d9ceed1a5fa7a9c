// The webhook's Prometheus metrics: every decision by outcome and reason, and how long a review took.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface WebhookMetrics {
  registry: Registry;
  decisions: Counter<'outcome' | 'reason'>;
  latency: Histogram<'outcome'>;
  registryUp: Gauge;
}

export function createWebhookMetrics(registryUp: () => boolean, registry = new Registry()): WebhookMetrics {
  return {
    registry,
    decisions: new Counter({
      name: 'layover_webhook_decisions_total',
      help: 'Admission reviews answered, by outcome (mutated, unchanged, skipped, rejected) and reason',
      labelNames: ['outcome', 'reason'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'layover_webhook_review_duration_seconds',
      help: 'Time from a parsed review to its answer',
      labelNames: ['outcome'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
      registers: [registry],
    }),
    registryUp: new Gauge({
      name: 'layover_webhook_registry_up',
      help: '1 when the registry health check last succeeded',
      registers: [registry],
      collect() {
        this.set(registryUp() ? 1 : 0);
      },
    }),
  };
}
