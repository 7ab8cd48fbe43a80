// Lambda's Node.js runtime ships the AWS SDK for JavaScript v3: a bundle may leave `@aws-sdk/*` out
// (bundleAwsSdk: false, or a client imported only on a rare path) and find it at run time. This module
// hook plays that part for the shipped-bundle tests: an `@aws-sdk/*` import the bundle's own folder can't
// satisfy is resolved from RUNTIME_SDK_ROOT (this repository's node_modules). Nothing else is: any other
// missing module fails as it would in Lambda.
import { register } from 'node:module';

register(new URL('./runtime-sdk-resolve.mjs', import.meta.url), { data: { root: process.env.RUNTIME_SDK_ROOT } });
