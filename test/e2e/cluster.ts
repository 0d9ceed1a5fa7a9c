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

/** `docker build -t <tag> .` of the repository, through testcontainers (kept after the run, as `docker save` needs it). */
export async function buildImage(tag: string): Promise<void> {
  await GenericContainer.fromDockerfile(REPO_ROOT).build(tag, { deleteOnExit: false });
}

/**
 * `docker save <tag>` into `dir`: the one archive both kind (`kind load image-archive`) and
 * skopeo (`docker-archive:`) read. skopeo's `docker-daemon:` transport is not used: Debian's
 * skopeo speaks a Docker API version that Docker 25 and later refuse.
 */
export async function saveImage(tag: string, dir: string): Promise<string> {
  const archive = path.join(dir, 'image.tar');
  await runTool('docker', ['save', '--output', archive, tag], { timeoutMs: 10 * MINUTE });
  return archive;
}

export interface Cluster {
  name: string;
  kubeconfig: string;
  kubectl(args: string[], input?: string): Promise<string>;
  kubectlJson<T>(args: string[], input?: string): Promise<T>;
  /** Applies objects (a `List`) with `kubectl apply`. */
  apply(objects: unknown[]): Promise<void>;
  /** Loads a `docker save` archive into every node's containerd. */
  loadImage(archive: string): Promise<void>;
  delete(): Promise<void>;
}

const MINUTE = 60_000;

/** The oldest kubectl the suite accepts: what deploy/ uses (admissionregistration.k8s.io/v1 policies, kustomize 5). */
export const MIN_KUBECTL = { major: 1, minor: 30 } as const;
/** The oldest kind whose clusters run kube-proxy in nftables mode. */
export const MIN_KIND = { major: 0, minor: 24 } as const;

type Version = { major: number; minor: number };
const older = (a: Version, b: Version) => a.major < b.major || (a.major === b.major && a.minor < b.minor);

/** kubectl's client version from `kubectl version --client -o json`; throws naming what it got. */
export function kubectlVersion(json: string): Version {
  const client = (JSON.parse(json) as { clientVersion?: { major?: string; minor?: string } }).clientVersion;
  // Some builds report minor as "30+".
  const version = { major: Number.parseInt(client?.major ?? '', 10), minor: Number.parseInt(client?.minor ?? '', 10) };
  if (Number.isNaN(version.major) || Number.isNaN(version.minor)) throw new Error(`cannot read kubectl's version from: ${json.slice(0, 200)}`);
  return version;
}

/** kind's version from `kind version` (`kind v0.27.0 go1.23.6 linux/amd64`). */
export function kindVersion(output: string): Version {
  const match = /\bv(\d+)\.(\d+)\./.exec(output);
  if (!match) throw new Error(`cannot read kind's version from: ${output.slice(0, 200)}`);
  return { major: Number(match[1]), minor: Number(match[2]) };
}

/**
 * Where Docker runs, the suite needs kind, kubectl and docker (kind drives it; the image is
 * saved with it), new enough: it fails (it does not skip) with what to install.
 */
export async function requireTools(): Promise<void> {
  const missing = (tool: string, where: string) => new Error(`${tool} is not on PATH: with a Docker engine present the end-to-end suite needs it (${where})`);
  for (const [tool, where] of [['kind', 'kind.sigs.k8s.io'], ['kubectl', `${MIN_KUBECTL.major}.${MIN_KUBECTL.minor} or later, kubernetes.io/docs/tasks/tools`], ['docker', 'the Docker CLI'], ['skopeo', 'apt-get install -y skopeo']] as const) {
    try {
      requireTool(tool);
    } catch {
      throw missing(tool, where);
    }
  }
  const kubectl = kubectlVersion((await runTool('kubectl', ['version', '--client', '-o', 'json'])).stdout);
  if (older(kubectl, MIN_KUBECTL)) throw new Error(`kubectl ${kubectl.major}.${kubectl.minor} is too old: the end-to-end suite needs ${MIN_KUBECTL.major}.${MIN_KUBECTL.minor} or later`);
  const kind = kindVersion((await runTool('kind', ['version'])).stdout);
  if (older(kind, MIN_KIND)) throw new Error(`kind v${kind.major}.${kind.minor} is too old: kube-proxy's nftables mode needs kind v${MIN_KIND.major}.${MIN_KIND.minor} or later`);
}

/** A kind cluster named `layover-e2e-<pid>-<suffix>` (one per kube-proxy mode, never two at once). */
export async function createCluster(config: KindCluster, suffix: string): Promise<Cluster> {
  const tmp: TempDir = makeTempDir('layover-kind-');
  const name = `layover-e2e-${process.pid}-${suffix}`;
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
    async loadImage(archive) {
      await kind(['load', 'image-archive', archive]);
    },
    async delete() {
      // --kubeconfig: only our file loses the context, never the user's ~/.kube/config.
      await kind(['delete', 'cluster', '--kubeconfig', kubeconfig]);
      tmp.cleanup();
    },
  };
}
