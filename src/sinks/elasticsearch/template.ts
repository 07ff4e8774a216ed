/**
 * The composable index template clogs installs before its first document.
 *
 * Plain field types only, so it works on every distribution, including the
 * integration-test one without the mapper-extras and x-pack plugins (no
 * `match_only_text`, `constant_keyword`, ILM or ingest pipeline), and it wins
 * over the built-in `logs@template` (`logs-*-*`, priority 100) of a full
 * distribution, whose ECS dynamic templates would map our fields differently.
 *
 * - `container.labels` and `attrs` are `flattened`: label keys contain dots
 *   (`com.docker.compose.project`) and applications disagree on a field's
 *   type (`"user": 42` here, `"user": {"id": 42}` there); one flattened field
 *   takes both without a mapping conflict or a field explosion.
 * - `index.mapping.ignore_malformed` and `total_fields.ignore_dynamic_beyond_limit`
 *   turn what would reject a document into an ignored field.
 * - Every keyword has `ignore_above`: Lucene refuses terms over 32766 bytes.
 *
 * Installed only when absent or older than `TEMPLATE_VERSION` (bump it with
 * any change below), so a user's edits to an installed template of the same
 * version survive restarts.
 */
import type { Client, estypes } from '@elastic/elasticsearch';
import type { Target } from './bulk.js';

export const TEMPLATE_VERSION = 2;

/** Above the built-in `logs@template` (100). */
const PRIORITY = 200;

const keyword: estypes.MappingProperty = { type: 'keyword', ignore_above: 1024 };

export const MAPPINGS: estypes.MappingTypeMapping = {
  date_detection: false,
  dynamic_templates: [
    // A field a future clogs adds before the template version catches up: a keyword, not text + keyword.
    { strings_as_keyword: { match_mapping_type: 'string', mapping: keyword } },
  ],
  properties: {
    '@timestamp': { type: 'date_nanos' },
    message: { type: 'text' },
    stream: keyword,
    container: {
      properties: {
        id: keyword,
        name: keyword,
        image: { properties: { name: keyword } },
        labels: { type: 'flattened', ignore_above: 1024 },
        compose: { properties: { project: keyword, service: keyword } },
      },
    },
    host: { properties: { name: keyword } },
    log: { properties: { level: keyword } },
    attrs: { type: 'flattened', ignore_above: 8191, depth_limit: 50 },
    clogs: {
      properties: {
        input: keyword,
        tag: keyword,
        seq: { type: 'long' },
        ordinal: { type: 'integer' },
        piece: { type: 'integer' },
        truncated: { type: 'boolean' },
      },
    },
  },
};

export const SETTINGS: estypes.IndicesIndexSettings = {
  'index.mapping.ignore_malformed': true,
  'index.mapping.total_fields.limit': 10_000,
  'index.mapping.total_fields.ignore_dynamic_beyond_limit': true,
};

export function templateName(target: Target): string {
  return target.kind === 'data_stream' ? `clogs-logs-${target.dataset}` : `clogs-${indexPrefix(target.pattern)}`;
}

/** `logs-clogs-*` covers every namespace of the dataset; `clogs-%Y.%m.%d` → `clogs-*`. */
export function indexPattern(target: Target): string {
  if (target.kind === 'data_stream') return `logs-${target.dataset}-*`;
  const at = target.pattern.indexOf('%');
  return at < 0 ? target.pattern : target.pattern.slice(0, at) + '*';
}

function indexPrefix(pattern: string): string {
  const at = pattern.indexOf('%');
  return (at < 0 ? pattern : pattern.slice(0, at)).replace(/[-_.]+$/, '') || 'index';
}

export function buildTemplate(target: Target): estypes.IndicesPutIndexTemplateRequest {
  return {
    name: templateName(target),
    index_patterns: [indexPattern(target)],
    priority: PRIORITY,
    version: TEMPLATE_VERSION,
    _meta: { managed_by: 'clogs', description: 'clogs container logs; reinstalled when clogs ships a newer version' },
    ...(target.kind === 'data_stream' ? { data_stream: {}, allow_auto_create: true } : {}),
    template: { settings: SETTINGS, mappings: MAPPINGS },
  };
}

export type TemplateResult = 'installed' | 'current' | 'newer';

/**
 * Installs the template unless one of this or a newer version is there.
 * Throws what the client throws; the sender retries with backoff.
 */
export async function ensureTemplate(client: Client, target: Target, signal: AbortSignal): Promise<TemplateResult> {
  const name = templateName(target);
  const found = await client.indices.getIndexTemplate({ name }, { ignore: [404], signal });
  const installed = found.index_templates?.find((t) => t.name === name)?.index_template.version;
  if (typeof installed === 'number' && installed >= TEMPLATE_VERSION) return installed > TEMPLATE_VERSION ? 'newer' : 'current';
  await client.indices.putIndexTemplate(buildTemplate(target), { signal });
  return 'installed';
}
