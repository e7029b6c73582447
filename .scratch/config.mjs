export default { test: { include: ['.scratch/*.scratch.ts'], testTimeout: 60000, hookTimeout: 60000 } };
