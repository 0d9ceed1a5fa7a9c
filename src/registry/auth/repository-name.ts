// Repository names as the distribution spec allows them, for scopes a token may carry.
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);

export function isRepositoryGrantable(name: string): boolean {
  return name.length <= 255 && NAME.test(name);
}
