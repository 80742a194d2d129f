// The operations this example uses; GraphQL Code Generator types them from
// authgraph's schema.graphql (`npm run codegen` writes src/gql/).
import { graphql } from "./gql/index.js";

export const SIGNUP = graphql(`
  mutation Signup($input: SignupInput!) {
    signup(input: $input) {
      accessToken
      refreshToken
      expiresIn
      user { id username email role createdAt }
    }
  }
`);

export const LOGIN = graphql(`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      accessToken
      refreshToken
      expiresIn
      user { id username }
    }
  }
`);

export const REFRESH = graphql(`
  mutation Refresh($refreshToken: String) {
    refreshToken(refreshToken: $refreshToken) {
      accessToken
      refreshToken
      refreshExpiresIn
    }
  }
`);

export const LOGOUT = graphql(`
  mutation Logout($refreshToken: String) {
    logout(refreshToken: $refreshToken)
  }
`);

export const ME = graphql(`
  query Me {
    me { id username email role }
  }
`);
