// ESLint for the JupyterLab extension (labextension/src): typescript-eslint's
// recommended rules plus the naming habits of JupyterLab (interfaces start with I).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['labextension/lib/**', 'nbops/labextension/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['labextension/**/*.ts'],
    rules: {
      '@typescript-eslint/naming-convention': [
        'error',
        { selector: 'interface', format: ['PascalCase'], custom: { regex: '^I[A-Z]', match: true } }
      ],
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none' }],
      '@typescript-eslint/no-namespace': 'off',
      eqeqeq: 'error',
      curly: 'error',
      'prefer-arrow-callback': 'error'
    }
  }
);
