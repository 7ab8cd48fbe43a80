/**
 * The library API for a portal or any Node.js service (`import … from 'dcv-session-resolver/runtime'`):
 * issue connect tokens, keep them and the sessions in a store, resolve and verify like the deployed
 * function, and serve the same routes. Nothing here loads aws-cdk-lib, constructs, cdk-nag or the CLI
 * (test/unit/package-exports.test.ts checks the module graph); the DynamoDB stores load the AWS SDK.
 */

// Connect tokens: issue one (what `token create` does), its links, and the token itself.
export {
  DEFAULT_MAX_USES,
  DEFAULT_TTL_SECONDS,
  MAX_TTL_SECONDS,
  issueToken,
  type IssueTokenDeps,
  type IssueTokenRequest,
  type IssuedToken,
} from './core/tokens/issue-token.js';
export { connectLinks, parseGatewayUrl, type ConnectLinks } from './core/tokens/connect-links.js';
export { hashToken, mintToken, tokenIdOf } from './core/tokens/token.js';
export type { TokenGrant, TokenState } from './core/tokens/token-grant.js';

// Token stores (hashes only): in memory, a directory (one host), a DynamoDB table (the stack's).
export { MemoryTokenStore, type ConsumeOutcome, type ConsumeRefusal, type TokenStore } from './core/tokens/token-store.js';
export { DirectoryTokenStore } from './adapters/directory-token-store.js';
export { DynamoDbTokenStore } from './adapters/dynamodb-token-store.js';
export { TokenVerifier, type TokenVerifierOptions, type VerifyRequest, type VerifyResult } from './core/tokens/verify-token.js';

// Session stores and records: in memory, a JSON file, a DynamoDB table (SDK client or the lean signed one).
export { MemorySessionStore, type SessionStore } from './core/session-store.js';
export { FileSessionStore, type FileSessionStoreOptions } from './adapters/file-session-store.js';
export { DynamoDbSessionStore, createResolveDynamoClient, type DynamoClientOptions } from './adapters/dynamodb-session-store.js';
export { DynamoApiSessionStore } from './adapters/dynamodb-lite-session-store.js';
export { sdkDynamoApi, type DynamoApi } from './adapters/dynamodb-api.js';
export { createLiteDynamoApi, type DynamoLiteOptions } from './adapters/dynamodb-lite.js';
export { parseSessionRecord, type RawItem, type SessionRecord } from './core/session-record.js';

// Resolving, the router the Lambda handler and `serve` share, and a local server around it.
export { SessionResolver, parseResolveQuery, type ResolveAnswer, type ResolveQuery, type ResolverOptions } from './core/resolve.js';
export { createRouter, type HttpRequest, type HttpResponse, type Router, type RouterOptions } from './core/http-router.js';
export { startLocalServer, type LocalServerOptions, type RunningServer } from './adapters/local-server.js';
export { CidrSet } from './core/ip.js';
export { silentLog, type Log } from './core/log.js';
export {
  BadRequestError,
  ForbiddenError,
  HttpError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
} from './core/errors.js';

// The gateway's side of the contract: its request, a check of an answer, its configuration file.
export { checkResolverAnswer, gatewayRequestUrl, type ContractVerdict } from './core/resolver-contract.js';
export { renderGatewayConfig } from './core/gateway-config.js';
