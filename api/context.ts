/** Who is calling, as the auth layer resolved it, for this one request. */
export interface RequestContext {
  projectId: string;
  userId: string;
  roles: string[];
  isAdmin: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the auth hook on every authenticated route. */
    ctx: RequestContext;
  }
}
