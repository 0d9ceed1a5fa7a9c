// kubelet's side of an image pull: CRI v1 ImageService calls over containerd's socket (gRPC on
// a unix socket), with the credentials kubelet takes from an imagePullSecret.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = fileURLToPath(new URL('../fixtures/cri/image-service.proto', import.meta.url));

export interface CriAuth { username: string; password: string }
export interface CriImage { id: string; repoTags: string[]; repoDigests: string[]; size: string }

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;
interface ImageServiceClient extends grpc.Client {
  PullImage(req: object, options: grpc.CallOptions, cb: Callback<{ imageRef: string }>): void;
  ImageStatus(req: object, options: grpc.CallOptions, cb: Callback<{ image: CriImage | null }>): void;
}

export interface CriImageService {
  /** PullImage as kubelet sends it; resolves with the image id (config digest) containerd reports. */
  pullImage(image: string, auth?: CriAuth, timeoutMs?: number): Promise<string>;
  /** ImageStatus: undefined when containerd does not have the image. */
  imageStatus(image: string): Promise<CriImage | undefined>;
  close(): void;
}

export function criImageService(socket: string): CriImageService {
  const definition = protoLoader.loadSync(PROTO, { keepCase: false, longs: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: { ImageService: new (address: string, creds: grpc.ChannelCredentials) => ImageServiceClient } } };
  const client = new pkg.runtime.v1.ImageService(`unix://${socket}`, grpc.credentials.createInsecure());
  const call = <T>(fn: (cb: Callback<T>) => void) => new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
  return {
    async pullImage(image, auth, timeoutMs = 120_000) {
      const res = await call<{ imageRef: string }>((cb) => client.PullImage({ image: { image }, auth: auth ?? null }, { deadline: Date.now() + timeoutMs }, cb));
      return res.imageRef;
    },
    async imageStatus(image) {
      const res = await call<{ image: CriImage | null }>((cb) => client.ImageStatus({ image: { image } }, { deadline: Date.now() + 10_000 }, cb));
      return res.image ?? undefined;
    },
    close: () => client.close(),
  };
}
