// A throwaway kind cluster for the end-to-end suite, and kubectl against it. Docker itself is
// reached through testcontainers: it says whether an engine runs here, and builds the image.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GenericContainer, getContainerRuntimeClient } from 'testcontainers';
import { stringify } from 'yaml';
import { requireTool, runTool } from '../helpers/run-tool.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { REPO_ROOT, type KindCluster } from './manifests.js';

/** Why the suite cannot run here (no container engine), or undefined when it can. */
export async function dockerUnavailable(): Promise<string | undefined> {
  try {
    await getContainerRuntimeClient();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** `docker build -t <tag> .` of the repository, through testcontainers (kept after the run, as `kind load` needs it). */
export async function buildImage(tag: string): Promise<void> {
  await GenericContainer.fromDockerfile(REPO_ROOT).build(tag, { deleteOnExit: false });
}

export interface Cluster {
  name: string;
  kubeconfig: string;
  kubectl(args: string[], input?: string): Promise<string>;
  kubectlJson<T>(args: string[], input?: string): Promise<T>;
  /** Applies objects (a `List`) with `kubectl apply`. */
  apply(objects: unknown[]): Promise<void>;
  loadImage(tag: string): Promise<void>;
  delete(): Promise<void>;
}

const MINUTE = 60_000;

/** Where Docker runs but kind is missing, the suite fails (it does not skip) with this. */
export function requireKind(): void {
  try {
    requireTool('kind');
  } catch {
    throw new Error('kind is not on PATH: with a Docker engine present the end-to-end suite needs the kind CLI (kind.sigs.k8s.io)');
  }
}

export async function createCluster(config: KindCluster): Promise<Cluster> {
  const tmp: TempDir = makeTempDir('layover-kind-');
  const name = `layover-e2e-${process.pid}`;
  const configFile = path.join(tmp.path, 'kind-cluster.yaml');
  const kubeconfig = path.join(tmp.path, 'kubeconfig');
  await writeFile(configFile, stringify(config));
  const kind = (args: string[], timeoutMs = 10 * MINUTE) => runTool('kind', [...args, '--name', name], { timeoutMs });
  try {
    await kind(['create', 'cluster', '--config', configFile, '--kubeconfig', kubeconfig, '--wait', '5m']);
  } catch (err) {
    await kind(['delete', 'cluster', '--kubeconfig', kubeconfig]).catch(() => undefined);
    tmp.cleanup();
    throw err;
  }
  const kubectl = async (args: string[], input?: string) => (await runTool('kubectl', ['--kubeconfig', kubeconfig, ...args], { input, timeoutMs: 10 * MINUTE })).stdout;
  return {
    name,
    kubeconfig,
    kubectl,
    async kubectlJson<T>(args: string[], input?: string) {
      return JSON.parse(await kubectl([...args, '-o', 'json'], input)) as T;
    },
    async apply(objects) {
      await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
    },
    async loadImage(tag) {
      await kind(['load', 'docker-image', tag]);
    },
    async delete() {
      // --kubeconfig: only our file loses the context, never the user's ~/.kube/config.
      await kind(['delete', 'cluster', '--kubeconfig', kubeconfig]);
      tmp.cleanup();
    },
  };
}
