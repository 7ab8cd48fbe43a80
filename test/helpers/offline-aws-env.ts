// Every test runs with fake static credentials and a fixed region, and with the instance metadata
// service disabled, so the AWS SDK never tries to reach anything but the loopback servers tests start.
process.env.AWS_ACCESS_KEY_ID = 'AKIDTESTTESTTEST';
process.env.AWS_SECRET_ACCESS_KEY = 'test-secret';
process.env.AWS_REGION = 'us-east-1';
process.env.AWS_EC2_METADATA_DISABLED = 'true';
delete process.env.AWS_PROFILE;
delete process.env.AWS_SESSION_TOKEN;
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
