// The Docker image reference grammar (as specified by distribution/reference), written out as
// regular expressions built from named pieces so each rule can be read against the spec.
//
//   reference        := name [ ":" tag ] [ "@" digest ]
//   name             := [ domain "/" ] remote-name
//   domain           := host [ ":" port ]
//   host             := domain-name | "[" IPv6 "]"
//   remote-name      := path-component [ "/" path-component ]*
//   path-component   := alnum [ separator alnum ]*      (lower case only)
//   separator        := "." | "_" | "__" | "-"+
//   tag              := [\w][\w.-]{0,127}
//   digest           := algorithm ":" hex{32,}

const group = (s: string) => `(?:${s})`;
const many = (s: string) => `${group(s)}*`;

const alnum = '[a-z0-9]+';
const separator = group('[._]|__|-+');
const pathComponent = alnum + many(separator + alnum);
const remoteName = pathComponent + many('/' + pathComponent);

const domainLabel = group('[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]');
const domainName = domainLabel + many('\\.' + domainLabel);
// Only plain compressed/uncompressed IPv6 in brackets: zones and mapped forms are excluded on purpose.
const ipv6 = '\\[[a-fA-F0-9:]+\\]';
const domain = group(domainName + '|' + ipv6) + group(':[0-9]+') + '?';

const tag = '[\\w][\\w.-]{0,127}';
const algorithm = '[A-Za-z][A-Za-z0-9]*' + many('[-_+.][A-Za-z][A-Za-z0-9]*');
const digest = algorithm + ':[0-9a-fA-F]{32,}';

export const NAME_MAX_LENGTH = 255;

/** A whole reference: groups 1 name, 2 tag, 3 digest. */
export const REFERENCE_RE = new RegExp(`^(${group(domain + '/') + '?' + remoteName})(?::(${tag}))?(?:@(${digest}))?$`);
/** A domain on its own (the part before the first "/"), host and optional port. */
export const DOMAIN_RE = new RegExp(`^${domain}$`);
/** A remote name on its own (the repository path). */
export const REMOTE_NAME_RE = new RegExp(`^${remoteName}$`);
export const TAG_RE = new RegExp(`^${tag}$`);
export const DIGEST_RE = new RegExp(`^${digest}$`);
/** A bare 64-hex identifier, which would be ambiguous with an image ID. */
export const IDENTIFIER_RE = /^[a-f0-9]{64}$/;
