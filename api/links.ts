/** Nova's self (versioned) and bookmark (unversioned) links. */
export function resourceLinks(publicUrl: string, collection: string, id: string) {
  return [
    { rel: "self", href: `${publicUrl}/v2.1/${collection}/${id}` },
    { rel: "bookmark", href: `${publicUrl}/${collection}/${id}` },
  ];
}

/** The id at the end of a reference that may be a bare id or an href. */
export function idFromRef(ref: string): string {
  const trimmed = ref.trim().replace(/\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  return slash >= 0 ? trimmed.slice(slash + 1) : trimmed;
}
