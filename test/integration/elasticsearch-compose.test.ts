/**
 * compose.yaml and the Dockerfile, checked without pulling images (no
 * registry is reachable here): `docker-compose config` validates the file
 * and renders it; the assertions hold the parts the issue asks for.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const run = promisify(execFile);

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  ports?: string[];
  volumes?: string[];
  user?: string;
  logging?: { driver: string; options: Record<string, string> };
  depends_on?: Record<string, { condition: string }> | string[];
  restart?: string;
}

async function rendered(): Promise<{ services: Record<string, Service> }> {
  const { stdout } = await run('docker-compose', ['-f', 'compose.yaml', 'config'], { timeout: 60_000 });
  return parse(stdout) as { services: Record<string, Service> };
}

describe('compose.yaml', () => {
  it('is valid for docker-compose', async () => {
    await run('docker-compose', ['-f', 'compose.yaml', 'config', '-q'], { timeout: 60_000 });
  });

  it('runs Elasticsearch, Kibana, clogs, a fluentd-driver demo app and a one-shot data-view setup', async () => {
    const { services } = await rendered();
    expect(Object.keys(services).sort()).toEqual(['clogs', 'demo-app', 'elasticsearch', 'kibana', 'kibana-setup']);
    expect(services.elasticsearch!.image).toMatch(/^docker\.elastic\.co\/elasticsearch\/elasticsearch:9\./);
    expect(services.kibana!.image).toMatch(/^docker\.elastic\.co\/kibana\/kibana:9\./);
  });

  it('publishes the forward port on 127.0.0.1 only and mounts the Docker socket read-only', async () => {
    const clogs = (await rendered()).services.clogs!;
    expect(clogs.build).toBeDefined();
    expect(clogs.ports).toContain('127.0.0.1:24224:24224/tcp');
    expect(clogs.ports!.every((p) => p.startsWith('127.0.0.1:'))).toBe(true);
    expect(clogs.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock:ro');
    expect(clogs.command).toEqual(expect.arrayContaining(['collect', '--es', 'http://elasticsearch:9200']));
    expect(clogs.depends_on).toMatchObject({ elasticsearch: { condition: 'service_healthy' } });
  });

  it('sends the demo app through the fluentd driver to clogs', async () => {
    const demo = (await rendered()).services['demo-app']!;
    expect(demo.logging!.driver).toBe('fluentd');
    expect(demo.logging!.options['fluentd-address']).toBe('127.0.0.1:24224');
    expect(demo.logging!.options['fluentd-sub-second-precision']).toBe('true');
  });

  it('creates the Kibana data view for logs-clogs-* once Kibana is healthy', async () => {
    const setup = (await rendered()).services['kibana-setup']!;
    expect(setup.depends_on).toMatchObject({ kibana: { condition: 'service_healthy' } });
    expect(setup.restart).toBe('no');
    const args = setup.entrypoint!.join(' ');
    expect(args).toContain('http://kibana:5601/api/data_views/data_view');
    expect(args).toContain('kbn-xsrf');
    const body = JSON.parse(setup.entrypoint!.at(-1)!);
    expect(body).toMatchObject({ override: true, data_view: { title: 'logs-clogs-*', timeFieldName: '@timestamp' } });
  });
});

describe('Dockerfile', () => {
  const text = readFileSync('Dockerfile', 'utf8');

  it('runs node as PID 1 in exec form, so SIGTERM reaches clogs', () => {
    expect(text).toMatch(/^FROM node:20-slim$/m);
    expect(text).toMatch(/^ENTRYPOINT \["node", "dist\/src\/clogs\.cjs"\]$/m);
    expect(text).toMatch(/^STOPSIGNAL SIGTERM$/m);
    expect(text).toMatch(/^CMD \["collect"/m);
  });
});
